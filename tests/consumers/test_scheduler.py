"""One scheduler pass over every partition: due delayed messages are queued, parked
ones past their ttl expired; one reclaim pass: unacked ones past their deadline
retried."""

from __future__ import annotations

import redis.asyncio as aioredis

from delivery.clock import server_ms
from delivery.keys import Keyspace
from delivery.producer import Limits
from delivery.store import Timing
from tests.support import Harness, spread_users, wait_until


async def test_one_tick_promotes_retries_and_expires_across_partitions(
    r: aioredis.Redis, keyspace: Keyspace
) -> None:
    timing = Timing(ack_timeout_ms=100, retry_base_seconds=0.05, retry_max_seconds=0.1)
    h = await Harness(r, keyspace, timing, Limits()).start()
    online, offline, later = spread_users(keyspace, per_partition=1)[:3]
    assert len({keyspace.partition_of(u) for u in (online, offline, later)}) == 3
    await h.connect(online)
    unacked = await h.producer.send(online, {"n": 1})
    parked = await h.producer.send(offline, {"n": 2}, ttl_seconds=1)
    delayed = await h.producer.send(later, {"n": 3}, delay_seconds=0.1)
    assert await h.worker.process_one(range(keyspace.partitions), block_ms=0) == 2
    assert [await h.status(m.id) for m in (unacked, parked, delayed)] == [
        "sent",
        "parked",
        "scheduled",
    ]
    expires = int(await r.hget(keyspace.msg(parked.id), "ea"))

    async def all_due() -> bool:
        return await server_ms(r) >= expires

    await wait_until(all_due, within=5)
    assert await h.scheduler.tick() == {"promoted": 1, "expired": 1, "undelivered": 0}
    assert await h.worker.reclaim(range(keyspace.partitions)) == 1  # the overdue one

    assert [await h.status(m.id) for m in (unacked, parked, delayed)] == [
        "scheduled",  # waiting for its retry
        "expired",
        "queued",
    ]
    assert await h.scheduler.tick() == {"promoted": 0, "expired": 0, "undelivered": 0}
    assert await h.worker.reclaim(range(keyspace.partitions)) == 0
