"""Webhooks in real `courier worker` processes: one killed with SIGKILL in the middle of a
request leaves the event to another (its job's lease ends), and bad webhook settings
are refused at start in one line, before anything runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
import redis.asyncio as aioredis

from delivery.keys import Keyspace
from delivery.producer import Producer
from delivery.webhooks import new_secret
from tests.receiver import Receiver
from tests.support import stop_process, wait_until, worker_process

pytestmark = pytest.mark.slow

COURIER = str(Path(sys.executable).with_name("courier"))
SETTINGS = {
    "webhook_timeout_seconds": 1,  # a job's lease: 2 x 1 + 5 = 7 s
    "webhook_retry_base_seconds": 0.1,
    "webhook_retry_max_seconds": 0.5,
    "claim_idle_seconds": 0.5,
    "read_block_ms": 100,
    "scheduler_interval_seconds": 0.1,
}


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rc = await Receiver().start()
    yield rc
    await rc.stop()


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-3000:] if path.exists() else "(no log)"


async def test_a_worker_killed_mid_request_leaves_the_event_to_another(
    redis_url: str, keyspace: Keyspace, r: aioredis.Redis, tmp_path: Path, receiver: Receiver
) -> None:
    secret = new_secret()
    hooks = orjson.dumps([{"id": "crm", "url": receiver.endpoint("crm"), "secret": secret}])
    receiver.mode["crm"] = "hang_once"  # the first request of each event never answers
    procs = []
    try:
        a = worker_process(
            redis_url,
            keyspace,
            "worker-a",
            str(tmp_path / "a.log"),
            webhooks=hooks.decode(),
            **SETTINGS,
        )
        procs.append(a)
        producer = Producer(r, keyspace=keyspace)
        m = await producer.send("ghost", {"n": 1})  # offline: parked, an event

        async def in_flight() -> bool:
            assert a.poll() is None, _tail(tmp_path / "a.log")
            return len(receiver.requests) == 1

        await wait_until(in_flight, within=20)
        a.send_signal(signal.SIGKILL)  # mid-request: no answer, no failure recorded
        a.wait(10)
        (first,) = receiver.requests
        assert receiver.answered == []
        b = worker_process(
            redis_url,
            keyspace,
            "worker-b",
            str(tmp_path / "b.log"),
            webhooks=hooks.decode(),
            **SETTINGS,
        )
        procs.append(b)

        async def delivered() -> bool:
            assert b.poll() is None, _tail(tmp_path / "b.log")
            return len(receiver.answered) == 1

        await wait_until(delivered, within=20, every=0.1)
        (again,) = receiver.answered
        assert again.webhook_id == first.webhook_id and again.body == first.body
        body = orjson.loads(again.body)
        assert (body["type"], body["data"]["message_id"]) == ("parked", m.id)

        async def finished() -> bool:
            p = keyspace.partition_of("ghost")
            return await r.zcard(keyspace.key(p, "wh_due", endpoint="crm")) == 0

        await wait_until(finished, within=5)
        assert len(receiver.requests) == 2  # the killed attempt and the one that worked
    finally:
        for proc in procs:
            stop_process(proc)


@pytest.mark.parametrize(
    ("hooks", "says"),
    [
        ("not json", "COURIER_WEBHOOKS is not JSON"),
        ('{"id": "crm"}', "COURIER_WEBHOOKS must be a JSON list of endpoints, not dict"),
        (
            '[{"id": "crm", "url": "ftp://x", "secret": "%s"}]',
            "COURIER_WEBHOOKS[0] ('crm'): url: an http:// or https:// URL with a host",
        ),
        (
            '[{"id": "crm", "url": "http://127.0.0.1:9/x", "secret": "hunter2"}]',
            "COURIER_WEBHOOKS[0] ('crm'): secret: must start with whsec_",
        ),
        (
            '[{"id": "crm", "url": "http://127.0.0.1:9/x", "secret": "%s", "events": ["seen"]}]',
            "COURIER_WEBHOOKS[0] ('crm'): events.0: Input should be 'delivered'",
        ),
        (
            '[{"id": "a", "url": "http://h/x", "secret": "%s"}, '
            '{"id": "a", "url": "http://h/y", "secret": "%s"}]',
            "COURIER_WEBHOOKS[1] ('a'): id 'a' is used twice",
        ),
    ],
)
@pytest.mark.parametrize("command", ["worker", "serve"])
def test_bad_webhook_settings_are_refused_in_one_line(
    redis_url: str, keyspace: Keyspace, tmp_path: Path, hooks: str, says: str, command: str
) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("COURIER_")},
        "COURIER_REDIS_URL": redis_url,
        "COURIER_KEY_PREFIX": keyspace.prefix,
        "COURIER_DATA_DIR": str(tmp_path),
        "COURIER_JWT_SECRET": "x" * 32,
        "COURIER_WEBHOOKS": hooks.replace("%s", new_secret()),
    }
    done = subprocess.run([COURIER, command], env=env, capture_output=True, timeout=60)
    assert done.returncode == 2, done.stderr.decode()
    lines = [ln for ln in done.stderr.decode().splitlines() if ln.startswith("courier:")]
    assert len(lines) == 1 and lines[0].startswith(f"courier: {says}"), lines
    assert b"Traceback" not in done.stderr and b"Courier on" not in done.stdout
