"""Entries that wait out a full Redis are no poison: while Redis refuses writes the
pending list counts a delivery at every reclaim, and those used to be dead-lettered
(``poison``) after POISON_DELIVERIES reclaims. A `courier worker` that reads while
Redis is full (SIGSTOPped during the enqueue, SIGCONT once it filled up), reclaim
passes every 0.3 s, an edge with devices that ack everything: nothing ends dead, and
everything is delivered once memory frees."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from api.auth import issue
from delivery.keys import GROUP, Keyspace
from delivery.producer import Producer
from delivery.settings import Settings
from tests.full_redis import FullRedis, private_redis
from tests.processes import SECRET, Proc, serve_env
from tests.support import stop_process, worker_process

pytestmark = pytest.mark.slow

FAST = {
    "CLAIM_IDLE_SECONDS": "0.3",
    "POISON_DELIVERIES": "2",
    "ACK_TIMEOUT_SECONDS": "1",
    "MAX_ATTEMPTS": "2",
    "RETRY_BASE_SECONDS": "0.1",
    "RETRY_MAX_SECONDS": "0.3",
    "SCHEDULER_INTERVAL_SECONDS": "0.05",
    "READ_BLOCK_MS": "100",
    "HEARTBEAT_INTERVAL_SECONDS": "1",
    "HEARTBEAT_TIMEOUT_SECONDS": "10",
}


@pytest.fixture
def full(tmp_path: Path) -> Iterator[FullRedis]:
    with private_redis(tmp_path) as f:
        yield f


async def _device(url: str, user: str, got: set[str]) -> None:
    """A device that pings and acks everything it receives, reconnecting when closed."""
    token = issue(Settings(jwt_secret=SECRET), user)
    while True:
        with contextlib.suppress(ConnectionClosed, OSError, TimeoutError):
            async with connect(f"{url}?token={token}", open_timeout=5) as ws:
                last_ping = 0.0
                while True:
                    if time.monotonic() - last_ping > 0.5:
                        await ws.send('{"type":"ping"}')
                        last_ping = time.monotonic()
                    try:
                        frame = orjson.loads(await asyncio.wait_for(ws.recv(), 0.5))
                    except TimeoutError:
                        continue
                    if frame["type"] == "message":
                        got.add(frame["id"])
                        await ws.send(orjson.dumps({"type": "ack", "id": frame["id"]}).decode())
        await asyncio.sleep(0.2)


async def test_nothing_is_buried_while_redis_is_full(
    full: FullRedis, keyspace: Keyspace, tmp_path: Path
) -> None:
    r = full.client()
    edge = Proc(
        "edge",
        serve_env(
            "edge", full.url, keyspace, tmp_path, **{f"COURIER_{k}": v for k, v in FAST.items()}
        ),
        tmp_path,
        "--no-consumers",
    )
    worker = worker_process(full.url, keyspace, "worker-a", str(tmp_path / "w.log"), **FAST)
    users = [f"user{i}" for i in range(4)]
    got: set[str] = set()
    devices = []
    try:
        await edge.ready()
        devices = [asyncio.create_task(_device(edge.ws_url, u, got)) for u in users]
        deadline = time.monotonic() + 20
        while len(await r.xinfo_groups(keyspace.stream(0, "normal")) or []) == 0:
            assert time.monotonic() < deadline, "the worker never made its groups"
            await asyncio.sleep(0.1)
        await asyncio.sleep(1)  # the devices are online
        worker.send_signal(signal.SIGSTOP)
        producer = Producer(r, keyspace=keyspace)
        ids = [
            a.id
            for batch in range(4)
            for (a,) in await producer.submit_many(
                [{"user_id": u, "payload": {"n": batch}} for u in users for _ in range(25)]
            )
        ]
        await full.fill()
        worker.send_signal(signal.SIGCONT)  # it reads while Redis refuses every dispatch
        await asyncio.sleep(4)  # ~13 reclaim passes, several ack timeouts
        buried = sum([await r.xlen(keyspace.key(p, "dlq")) for p in range(keyspace.partitions)])
        assert buried == 0, f"{buried} buried while Redis was full"
        pending = sum(
            [
                (await r.xpending(keyspace.stream(p, "normal"), GROUP))["pending"]
                for p in range(keyspace.partitions)
            ]
        )
        assert pending > 0, "the test meant entries to wait while Redis is full"
        await full.free()

        async def statuses() -> dict[str, int]:
            pipe = r.pipeline(transaction=False)
            for mid in ids:
                pipe.hget(keyspace.msg(mid), "s")
            out: dict[str, int] = {}
            for s in await pipe.execute():
                out[(s or b"gone").decode()] = out.get((s or b"gone").decode(), 0) + 1
            return out

        deadline = time.monotonic() + 40
        while (counts := await statuses()) != {"delivered": len(ids)}:
            assert "dead" not in counts, counts
            assert time.monotonic() < deadline, counts
            await asyncio.sleep(0.2)
        dlq = sum([await r.xlen(keyspace.key(p, "dlq")) for p in range(keyspace.partitions)])
        assert dlq == 0
        assert got >= set(ids)
    finally:
        for t in devices:
            t.cancel()
        await asyncio.gather(*devices, return_exceptions=True)
        stop_process(worker)
        await edge.stop()
        await r.aclose()
