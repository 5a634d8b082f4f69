"""A worker process dies with SIGKILL while holding pending entries; another worker
takes them over (XAUTOCLAIM) and nothing is lost."""

from __future__ import annotations

import asyncio
import logging
import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from delivery.keys import GROUP, Keyspace
from delivery.presence import Presence
from delivery.producer import Limits, Producer
from delivery.store import Store, Timing
from tests.support import (
    NodeDevice,
    ensure_groups,
    spread_users,
    stop_process,
    wait_until,
    worker_process,
)

pytestmark = pytest.mark.slow
log = logging.getLogger(__name__)

N = 3000
EDGE = "edge-1"
WORKER_SETTINGS = {
    "claim_idle_seconds": 0.5,
    "read_count": 50,
    "read_block_ms": 100,
    "ack_timeout_seconds": 2,
    "retry_base_seconds": 0.1,
    "retry_max_seconds": 0.5,
    "heartbeat_timeout_seconds": 120,
    "scheduler_interval_seconds": 0.1,
}


async def _held_by(r: aioredis.Redis, keyspace: Keyspace, consumer: str) -> list[str]:
    """Message ids of the entries pending in `consumer`'s list, all streams."""
    ids = []
    for p in range(keyspace.partitions):
        for stream in keyspace.streams(p):
            rows = await r.xpending_range(stream, GROUP, "-", "+", 10_000, consumername=consumer)
            for row in rows:
                entry = await r.xrange(stream, row["message_id"], row["message_id"])
                ids.append(entry[0][1][b"m"].decode() if entry else "?")
    return ids


async def _catch_holding(
    r: aioredis.Redis, keyspace: Keyspace, proc: subprocess.Popen[bytes], consumer: str
) -> list[str]:
    """SIGSTOP the worker until it is frozen with entries pending, then SIGKILL it."""
    for _ in range(400):
        proc.send_signal(signal.SIGSTOP)
        held = await _held_by(r, keyspace, consumer)
        if held:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            return held
        proc.send_signal(signal.SIGCONT)
        await asyncio.sleep(0.005)
    raise AssertionError("the worker was never caught holding pending entries")


def _tail(path: Path, n: int = 30) -> str:
    return "\n".join(path.read_text().splitlines()[-n:]) if path.exists() else "(no log)"


async def _statuses(r: aioredis.Redis, keyspace: Keyspace, ids: list[str]) -> dict[str, int]:
    pipe = r.pipeline(transaction=False)
    for mid in ids:
        pipe.hget(keyspace.msg(mid), "s")
    out: dict[str, int] = {}
    for s in await pipe.execute():
        key = s.decode() if s else "missing"
        out[key] = out.get(key, 0) + 1
    return out


async def test_killed_worker_pending_entries_are_delivered_by_another(
    redis_url: str, keyspace: Keyspace, r: aioredis.Redis, tmp_path: Path
) -> None:
    started = time.monotonic()
    store = Store(r, keyspace=keyspace, timing=Timing())
    presence = Presence(r, keyspace=keyspace, heartbeat_timeout_ms=120_000)
    producer = Producer(r, keyspace=keyspace, limits=Limits(max_attempts=20))
    users = spread_users(keyspace, per_partition=3)
    await ensure_groups(r, keyspace)
    device = await NodeDevice(r, store, presence, EDGE, users).start()
    procs = []
    try:
        first = worker_process(
            redis_url, keyspace, "worker-a", str(tmp_path / "a.log"), **WORKER_SETTINGS
        )
        procs.append(first)
        batches = [
            [
                {
                    "user_id": users[i % len(users)],
                    "payload": {"i": i},
                    "priority": ("high", "normal", "low")[i % 3],
                }
                for i in range(j, j + 500)
            ]
            for j in range(0, N, 500)
        ]
        ids = [a.id for batch in batches for (a,) in await producer.submit_many(batch)]
        assert len(set(ids)) == N

        async def under_way() -> bool:  # kill it mid-run, not before its first read
            device.check()
            assert first.poll() is None, _tail(tmp_path / "a.log")
            return len(device.received) >= N // 5

        try:
            await wait_until(under_way, within=20)
        except AssertionError:
            raise AssertionError(
                f"worker-a delivered {len(device.received)} in 20 s: "
                f"{await _statuses(r, keyspace, ids)}\n{_tail(tmp_path / 'a.log')}"
            ) from None
        held = await _catch_holding(r, keyspace, first, "worker-a")
        log.info("worker-a killed holding %d entries", len(held))
        assert first.returncode == -signal.SIGKILL

        second = worker_process(
            redis_url, keyspace, "worker-b", str(tmp_path / "b.log"), **WORKER_SETTINGS
        )
        procs.append(second)

        async def all_delivered() -> bool:
            device.check()
            return (await _statuses(r, keyspace, ids)).get("delivered", 0) == N

        try:
            await wait_until(all_delivered, within=40, every=0.2)
        except AssertionError:
            raise AssertionError(
                f"not all delivered: {await _statuses(r, keyspace, ids)}\n"
                f"{_tail(tmp_path / 'b.log')}"
            ) from None

        assert await _statuses(r, keyspace, ids) == {"delivered": N}
        assert set(device.received) == set(ids)  # every message reached the device
        for mid in held:
            assert mid in device.received
        assert await _held_by(r, keyspace, "worker-a") == []
        for p in range(keyspace.partitions):
            for stream in keyspace.streams(p):
                assert await r.xlen(stream) == 0
                assert (await r.xpending(stream, GROUP))["pending"] == 0
        log.info(
            "kill test: %d held by the killed worker, %d duplicates (at least once), %.1f s",
            len(held),
            device.duplicates,
            time.monotonic() - started,
        )
        print(
            f"\nkill-worker: held={len(held)} duplicates={device.duplicates} "
            f"took={time.monotonic() - started:.1f}s"
        )
    finally:
        await device.stop()
        for proc in procs:
            stop_process(proc)
