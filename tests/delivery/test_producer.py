from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import redis
import redis.asyncio as aioredis

from delivery.keys import Keyspace
from delivery.producer import Limits, SyncProducer
from tests.support import Harness, enqueued, moved


async def test_sync_producer_shared_by_many_threads(
    redis_url: str, keyspace: Keyspace, r: aioredis.Redis
) -> None:
    producer = SyncProducer(
        redis.Redis.from_url(redis_url, max_connections=16), keyspace=keyspace, limits=Limits()
    )
    n, users = 400, [f"user{i}" for i in range(8)]

    def send(i: int) -> tuple[str, str, bool]:
        a = producer.send(users[i % len(users)], {"i": i}, priority=("high", "normal")[i % 2])
        return a.id, a.status, a.created

    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(send, range(n)))
    finally:
        producer.close()

    assert all(status == "queued" and created for _, status, created in results)
    ids = [mid for mid, _, _ in results]
    assert len(set(ids)) == n
    stored = 0
    for p in range(keyspace.partitions):
        for prio in ("high", "normal"):
            stored += await r.xlen(keyspace.stream(p, prio))
    assert stored == n
    for i, mid in enumerate(ids):
        assert keyspace.partition_of(users[i % len(users)]) == int(mid.split("-")[0])
    pipe = r.pipeline(transaction=False)
    for mid in ids:
        pipe.hget(keyspace.msg(mid), "s")
    assert set(await pipe.execute()) == {b"queued"}


async def test_sync_producer_batch_is_one_round_trip_with_one_id_per_recipient(
    redis_url: str, keyspace: Keyspace, r: aioredis.Redis
) -> None:
    producer = SyncProducer(redis.Redis.from_url(redis_url), keyspace=keyspace)
    try:
        out = producer.submit_many(
            [{"recipients": ["a", "b", "c"], "payload": 1}, {"user_id": "a", "payload": 2}]
        )
    finally:
        producer.close()
    assert [[x.user_id for x in plan] for plan in out] == [["a", "b", "c"], ["a"]]
    assert len({x.id for plan in out for x in plan}) == 4


async def test_the_producer_counts_the_messages_it_created(h: Harness) -> None:
    before = enqueued()
    await h.producer.send("alice", {"n": 1}, priority="high")
    await h.producer.submit_many(
        [
            {"recipients": ["bob", "carol"], "payload": 2, "priority": "low"},
            {"user_id": "dan", "payload": 3},
        ]
    )
    first = await h.producer.send("alice", {"n": 4}, idempotency_key="k")
    again = await h.producer.send("alice", {"n": 4}, idempotency_key="k")
    assert first.created and not again.created  # a repeat creates nothing: not counted
    await h.producer.task_status("t1", "alice", "completed")  # a final status: high
    assert moved(before) == {"high": 2, "normal": 2, "low": 2}


async def test_the_sync_producer_counts_too(
    redis_url: str, keyspace: Keyspace, r: aioredis.Redis
) -> None:
    """(`r`: the test's keys are deleted afterwards.)"""
    producer = SyncProducer(redis.Redis.from_url(redis_url), keyspace=keyspace, limits=Limits())
    before = enqueued()
    try:
        producer.send("alice", {"n": 1})
        producer.submit_many([{"user_id": "bob", "payload": 2, "priority": "high"}])
        producer.task_status("t1", "alice", "running")  # not final: normal
    finally:
        producer.close()
    assert moved(before) == {"high": 1, "normal": 2, "low": 0}
