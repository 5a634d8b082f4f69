"""Redis is killed (SIGKILL) and restarted on the same port and data folder in the
middle of a run: every message a producer was told "accepted" is delivered, and the
worker process reconnects by itself."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from api.redis_server import RedisServer
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

EDGE = "edge-1"
WORKER_SETTINGS = {
    "claim_idle_seconds": 0.5,
    "read_count": 50,
    "read_block_ms": 100,
    "ack_timeout_seconds": 1,
    "retry_base_seconds": 0.1,
    "retry_max_seconds": 0.5,
    "heartbeat_timeout_seconds": 120,
    "scheduler_interval_seconds": 0.1,
}


class Producing:
    """A producer loop: batches of 10 with idempotency keys; a batch that fails is
    sent again (same keys) until Redis answers, so `accepted` holds exactly the ids
    Courier acknowledged."""

    def __init__(self, producer: Producer, users: list[str]) -> None:
        self.producer = producer
        self.users = users
        self.accepted: dict[str, str] = {}  # idempotency key -> id
        self.accepted_at: dict[str, float] = {}
        self.failures = 0
        self.stop = asyncio.Event()

    async def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            batch = [
                {
                    "user_id": self.users[k % len(self.users)],
                    "payload": {"k": k},
                    "idempotency_key": f"k{k}",
                }
                for k in range(i, i + 10)
            ]
            while True:
                try:
                    results = await self.producer.submit_many(batch)
                    break
                except (RedisConnectionError, RedisTimeoutError, OSError):
                    self.failures += 1
                    await asyncio.sleep(0.05)
            now = time.monotonic()
            for msg, (acc,) in zip(batch, results, strict=True):
                assert self.accepted.setdefault(msg["idempotency_key"], acc.id) == acc.id
                self.accepted_at[acc.id] = now
            i += 10
            await asyncio.sleep(0.01)


async def _statuses(r: aioredis.Redis, keyspace: Keyspace, ids: list[str]) -> dict[str, int]:
    pipe = r.pipeline(transaction=False)
    for mid in ids:
        pipe.hget(keyspace.msg(mid), "s")
    out: dict[str, int] = {}
    for s in await pipe.execute():
        key = s.decode() if s else "missing"
        out[key] = out.get(key, 0) + 1
    return out


async def test_redis_killed_and_restarted_mid_run_loses_nothing(
    keyspace: Keyspace, tmp_path: Path
) -> None:
    started = time.monotonic()
    server = RedisServer(tmp_path / "redis", appendfsync="always").start()
    r = aioredis.Redis.from_url(server.url, socket_timeout=5, socket_connect_timeout=1)
    store = Store(r, keyspace=keyspace, timing=Timing())
    presence = Presence(r, keyspace=keyspace, heartbeat_timeout_ms=120_000)
    users = spread_users(keyspace, per_partition=2)
    await ensure_groups(r, keyspace)
    device = await NodeDevice(r, store, presence, EDGE, users).start()
    loop = Producing(Producer(r, keyspace=keyspace, limits=Limits(max_attempts=50)), users)
    worker = worker_process(
        server.url, keyspace, "worker-r", str(tmp_path / "worker.log"), **WORKER_SETTINGS
    )
    producing = asyncio.create_task(loop.run())
    try:

        async def delivered_some() -> bool:  # the worker is up and delivering
            device.check()
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()
            return len(device.received) >= 100

        await wait_until(delivered_some, within=20)
        before_kill = len(loop.accepted)
        server.kill()
        killed_at = time.monotonic()
        # longer than the client's own retries of a command (~0.4 s): the loops see it
        await asyncio.sleep(1.0)
        server.start()
        restarted_at = time.monotonic()

        async def produced_after_restart() -> bool:
            return sum(t > restarted_at for t in loop.accepted_at.values()) >= 300

        await wait_until(produced_after_restart, within=20)
        loop.stop.set()
        await producing
        ids = list(loop.accepted.values())

        async def all_delivered() -> bool:
            device.check()
            return (await _statuses(r, keyspace, ids)).get("delivered", 0) == len(ids)

        try:
            await wait_until(all_delivered, within=30, every=0.2)
        except AssertionError:
            raise AssertionError(
                f"not all delivered: {await _statuses(r, keyspace, ids)}; see {tmp_path}"
            ) from None

        assert await _statuses(r, keyspace, ids) == {"delivered": len(ids)}
        assert set(ids) <= set(device.received)
        assert worker.poll() is None, "the worker process died instead of reconnecting"
        assert loop.failures > 0 and device.errors > 0  # the outage was real
        after = sum(t > restarted_at for t in loop.accepted_at.values())
        assert after >= 300  # only the reconnected worker can have delivered these
        log_text = (tmp_path / "worker.log").read_text()
        assert "redis unavailable" in log_text  # it saw the outage and retried (tenacity)
        for p in range(keyspace.partitions):
            for stream in keyspace.streams(p):
                assert (await r.xpending(stream, GROUP))["pending"] == 0
        print(
            f"\nredis-restart: accepted={len(ids)} (before kill {before_kill}, after restart "
            f"{after}), producer retries={loop.failures}, duplicates={device.duplicates}, "
            f"unparked={len(device.unparked)}, outage={restarted_at - killed_at:.2f}s, "
            f"took={time.monotonic() - started:.1f}s"
        )
    finally:
        loop.stop.set()
        producing.cancel()
        await asyncio.gather(producing, return_exceptions=True)
        await device.stop()
        stop_process(worker)
        await r.aclose()
        server.stop()
