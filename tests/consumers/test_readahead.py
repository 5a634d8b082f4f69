"""The runner's reader on one server sends its next XREADGROUP with the dispatch of
the current batch, on a connection of its own (consumers/readahead.py)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from api.redis_server import RedisServer
from delivery.keys import Keyspace
from delivery.producer import Limits
from delivery.store import Timing
from tests.support import Harness, spread_users


@pytest.fixture
async def h(r: aioredis.Redis, keyspace: Keyspace) -> Harness:
    return await Harness(r, keyspace, Timing(), Limits()).start()


async def test_the_next_read_blocks_on_the_server_and_wakes_for_a_new_message(
    h: Harness,
) -> None:
    users = spread_users(h.keyspace, per_partition=1)
    parts = range(h.keyspace.partitions)
    for u in users:
        await h.connect(u)
    first = {u: (await h.producer.send(u, {"n": 1})).id for u in users}
    h.worker.block_ms = 5000

    assert await h.worker.process_next(parts) == len(users)  # the reply to its first read
    assert {u: h.devices.ids(u) for u in users} == {u: [first[u]] for u in users}
    assert h.worker._own.pending  # the next read went out with the dispatch calls

    later = asyncio.create_task(h.worker.process_next(parts))
    await asyncio.sleep(0.1)
    assert not later.done()  # blocked in Redis: nothing new yet
    started = time.monotonic()
    second = await h.producer.send(users[-1], {"n": 2})
    assert await asyncio.wait_for(later, 2) == 1
    assert time.monotonic() - started < 1  # woken by the entry, not by the timeout
    assert h.devices.ids(users[-1]) == [first[users[-1]], second.id]
    assert await h.status(second.id) == "sent"
    await h.worker.close()
    assert not h.worker._own.pending and h.worker._own.conn is None


async def test_a_read_without_blocking_answers_at_once_even_when_empty(h: Harness) -> None:
    await h.connect("alice")
    parts = range(h.keyspace.partitions)
    sent = (await h.producer.send("alice", 1)).id
    assert await h.worker.process_next(parts) == 1  # block_ms=0: reads never block
    assert await h.worker.process_next(parts) == 0  # the read sent with the dispatch
    later = (await h.producer.send("alice", 2)).id
    assert await h.worker.process_next(parts) == 1
    assert h.devices.ids("alice") == [sent, later]
    await h.worker.close()


async def test_a_dropped_connection_is_replaced_and_nothing_is_lost(
    r: aioredis.Redis, h: Harness
) -> None:
    users = spread_users(h.keyspace, per_partition=1)
    parts = range(h.keyspace.partitions)
    for u in users:
        await h.connect(u)
    h.worker.block_ms = 5000
    await h.producer.send(users[0], {"n": 1})
    assert await h.worker.process_next(parts) == 1
    assert h.worker._own.pending

    # Redis drops the reader's connection while its read waits.
    host, port = h.worker._own.conn._writer.get_extra_info("sockname")[:2]
    assert await r.client_kill(f"{host}:{port}")
    with pytest.raises(RedisConnectionError):
        await h.worker.process_next(parts)
    assert h.worker._own.conn is None

    sent = {u: (await h.producer.send(u, {"n": 2})).id for u in users}
    assert await h.worker.process_next(parts) == len(users)  # a new connection
    assert all(sent[u] in h.devices.ids(u) for u in users)
    await h.worker.close()


async def test_scripts_lost_by_redis_are_loaded_again_and_the_read_stays_in_step(
    keyspace: Keyspace, tmp_path: Path
) -> None:
    with RedisServer(tmp_path) as server:
        r = aioredis.Redis.from_url(server.url)
        try:
            h = await Harness(r, keyspace, Timing(), Limits()).start()
            users = spread_users(keyspace, per_partition=1)
            parts = range(keyspace.partitions)
            for u in users:
                await h.connect(u)
            first = {u: (await h.producer.send(u, {"n": 1})).id for u in users}
            await r.script_flush()  # Redis restarted without them, or a failover
            assert await h.worker.process_next(parts) == len(users)
            assert await h.worker.process_next(parts) == 0  # the read-ahead's reply
            second = {u: (await h.producer.send(u, {"n": 2})).id for u in users}
            assert await h.worker.process_next(parts) == len(users)
            assert {u: h.devices.ids(u) for u in users} == {u: [first[u], second[u]] for u in users}
            assert {await h.status(m) for m in [*first.values(), *second.values()]} == {"sent"}
            await h.worker.close()
        finally:
            await r.aclose()


async def test_a_failing_push_keeps_the_read_that_went_out_with_the_dispatch(
    h: Harness,
) -> None:
    """A transport or pool error after the dispatch replies were read is not the
    reader's connection's fault: its next read stays out and nothing waits for a claim."""
    await h.connect("alice")
    parts = range(h.keyspace.partitions)
    h.worker.block_ms = 5000
    push = h.worker.transport.push

    async def broken(*_: object) -> list[object]:
        raise RedisConnectionError("the pool lost a connection")

    h.worker.transport.push = broken  # type: ignore[method-assign]
    first = (await h.producer.send("alice", {"n": 1})).id
    with pytest.raises(RedisConnectionError):
        await h.worker.process_next(parts)
    assert h.worker._own.pending  # the read sent with the dispatch is still out
    h.worker.transport.push = push  # type: ignore[method-assign]

    second = (await h.producer.send("alice", {"n": 2})).id
    assert await asyncio.wait_for(h.worker.process_next(parts), 2) == 1
    assert h.devices.ids("alice") == [second]  # the first is `sent`, retried on its deadline
    assert await h.status(first) == "sent"
    await h.worker.close()
