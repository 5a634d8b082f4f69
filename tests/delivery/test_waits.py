"""``producer.wait``: returns as soon as the message reaches an awaited event (or a final
one), from the hash when it already did, from the events stream when it happens later;
times out as asked; still ends with events off (the hash is read again)."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis
import redis.asyncio as aioredis

from delivery.events import EventType
from delivery.exceptions import NotFound, ValidationError, WaitTimeout
from delivery.keys import Keyspace
from delivery.producer import Limits, SyncProducer
from delivery.store import Timing
from tests.support import Harness


async def test_wait_returns_when_the_device_acks(h: Harness) -> None:
    await h.connect("alice")
    m = await h.producer.send("alice", {"n": 1})
    await h.pump()
    waiting = asyncio.create_task(h.producer.wait(m.id, until="delivered", timeout=10))
    await asyncio.sleep(0.2)
    assert not waiting.done()
    started = time.monotonic()
    await h.ack("alice", [m.id])
    assert await asyncio.wait_for(waiting, 5) is EventType.DELIVERED
    assert time.monotonic() - started < 0.5  # from the stream, not the 1 s re-read
    # already delivered: answered from the hash at once
    assert await h.producer.wait(m.id, timeout=0.1) is EventType.DELIVERED


async def test_many_waits_share_a_reader_and_each_gets_its_own(h: Harness) -> None:
    await h.connect("alice")
    ms = [await h.producer.send("alice", {"n": i}) for i in range(20)]
    await h.pump()
    waits = [asyncio.create_task(h.producer.wait(m.id, timeout=10)) for m in ms]
    await asyncio.sleep(0.1)
    await h.ack("alice", [m.id for m in ms[::2]])
    done, pending = await asyncio.wait(waits, timeout=2)
    assert {w for w in done} == set(waits[::2]) and set(pending) == set(waits[1::2])
    assert h.producer._waits is not None and len(h.producer._waits._readers) <= 1
    await h.ack("alice", [m.id for m in ms[1::2]])
    assert await asyncio.gather(*waits) == [EventType.DELIVERED] * 20


async def test_a_final_outcome_ends_the_wait_and_timeouts_are_as_asked(h: Harness) -> None:
    m = await h.producer.send("bob", {"n": 1}, ttl_seconds=1)
    await h.pump()
    assert await h.producer.wait(m.id, until="parked", timeout=1) is EventType.PARKED
    waiting = asyncio.create_task(h.producer.wait(m.id, until="delivered", timeout=10))

    async def expired() -> bool:
        return waiting.done()

    await h.pump(until=expired, timeout=10)
    assert waiting.result() is EventType.EXPIRED  # it never will be delivered
    other = await h.producer.send("bob", {"n": 2})
    started = time.monotonic()
    with pytest.raises(WaitTimeout, match=f"message {other.id} reached none"):
        await h.producer.wait(other.id, until=["delivered", "replied"], timeout=0.3)
    assert 0.3 <= time.monotonic() - started < 1.0
    assert await h.producer.wait(other.id, timeout=0.1, default="nope") == "nope"
    with pytest.raises(NotFound):
        await h.producer.wait("0-00000000000000000000", timeout=0.1)
    with pytest.raises(ValidationError, match="unknown event type"):
        await h.producer.wait(other.id, until="seen", timeout=0.1)


async def test_with_events_off_a_wait_still_ends(r: aioredis.Redis, keyspace: Keyspace) -> None:
    h = await Harness(r, keyspace, Timing(events_max_len=0), Limits(events_max_len=0)).start()
    await h.connect("alice")
    m = await h.producer.send("alice", {"n": 1})
    await h.pump()
    waiting = asyncio.create_task(h.producer.wait(m.id, timeout=10))
    await asyncio.sleep(0.1)
    await h.ack("alice", [m.id])
    assert await asyncio.wait_for(waiting, 3) is EventType.DELIVERED  # the hash, re-read


async def test_the_blocking_wait(h: Harness, redis_url: str) -> None:
    await h.connect("alice")
    m = await h.producer.send("alice", {"n": 1})
    await h.pump()
    sync = SyncProducer(redis.Redis.from_url(redis_url), keyspace=h.keyspace)
    try:
        waiting = asyncio.create_task(asyncio.to_thread(sync.wait, m.id, timeout=10))
        await asyncio.sleep(0.2)
        await h.ack("alice", [m.id])
        assert await asyncio.wait_for(waiting, 5) is EventType.DELIVERED
        with pytest.raises(WaitTimeout):
            sync.wait((await h.producer.send("zoe", 1)).id, until="delivered", timeout=0.2)
    finally:
        sync.close()
