"""Lifecycle events: each change a producer cares about is in the partition's events
stream, written by the script that made it (and only then), with what the producer
needs; the readers (EventLog, EventGroup, producer.events) filter and share them."""

from __future__ import annotations

import asyncio
import contextlib

import orjson
import pytest
import redis.asyncio as aioredis

from delivery.events import EventGroup, EventLog, EventType, LifecycleEvent, split_event_id
from delivery.exceptions import ValidationError
from delivery.keys import Keyspace
from delivery.producer import Limits
from delivery.store import Timing
from tests.support import NODE, Harness, wait_until


async def all_events(r: aioredis.Redis, keyspace: Keyspace) -> list[LifecycleEvent]:
    out = []
    for p in range(keyspace.partitions):
        out += [LifecycleEvent.from_entry(p, i, f) for i, f in await r.xrange(keyspace.events(p))]
    return sorted(out, key=lambda e: e.at_ms)


def of(events: list[LifecycleEvent], mid: str) -> list[tuple[str, dict[str, object]]]:
    return [(e.type.value, e.data) for e in events if e.message_id == mid]


async def test_each_change_has_its_event_with_what_the_producer_needs(h: Harness) -> None:
    await h.connect("alice")
    acked = await h.producer.send("alice", {"n": 1})
    asked = await h.producer.send("alice", {"q": "ok?"}, reply_requested=True)
    parked = await h.producer.send("bob", {"n": 2}, collapse_key="score")
    newer = await h.producer.send("bob", {"n": 3}, collapse_key="score")  # replaces it
    dies = await h.producer.send("alice", {"n": 4}, max_attempts=1)
    await h.pump()
    assert await h.ack("alice", [acked.id]) == {acked.id: "ok"}
    reply = await h.store.reply(user_id="alice", conn_id="c1", message_id=asked.id, data=b'"yes"')
    assert reply == "ok"
    await h.pump(until=lambda: _is(h, dies.id, "dead"), timeout=10)
    events = await all_events(h.r, h.keyspace)

    ((kind, data),) = of(events, acked.id)
    assert kind == "delivered" and data["conn"] == "c1" and data["node"] == NODE
    assert isinstance(data["latency_ms"], int) and 0 <= data["latency_ms"] < 10_000
    assert [k for k, _ in of(events, asked.id)] == ["replied", "delivered"]
    assert of(events, asked.id)[0][1] == {"conn": "c1", "reply": "yes"}
    assert of(events, parked.id) == [("cancelled", {"reason": "collapsed", "by": newer.id})]
    ((kind, data),) = of(events, newer.id)
    assert kind == "parked" and "parked_until" in data
    assert of(events, dies.id) == [("dead", {"reason": "ack_timeout"})]
    # nothing else: no event for queued, sent, retries
    assert len(events) == 6
    e = next(e for e in events if e.message_id == acked.id)
    assert e.user_id == "alice" and e.attempt == 1
    assert split_event_id(e.id) == (h.keyspace.partition_of("alice"), e.entry_id)
    body = orjson.loads(e.body())
    assert body["id"] == e.id and body["type"] == "delivered"
    assert body["timestamp"].endswith("Z") and body["data"]["message_id"] == acked.id


async def _is(h: Harness, mid: str, status: str) -> bool:
    return await h.status(mid) == status


async def test_an_expired_message_has_its_event(h: Harness) -> None:
    m = await h.producer.send("carol", {"n": 1}, ttl_seconds=1)  # parked, then expired
    await h.pump(until=lambda: _is(h, m.id, "expired"), timeout=10)
    assert [k for k, _ in of(await all_events(h.r, h.keyspace), m.id)] == ["parked", "expired"]


async def test_a_refused_change_writes_no_event(h: Harness) -> None:
    await h.connect("alice")
    m = await h.producer.send("alice", {"n": 1})
    await h.pump()
    assert await h.ack("alice", [m.id]) == {m.id: "ok"}
    assert await h.ack("alice", [m.id]) == {m.id: "duplicate"}  # changes nothing
    other = await h.ack("mallory", [m.id])
    assert other[m.id] in ("forbidden", "unknown")
    assert [k for k, _ in of(await all_events(h.r, h.keyspace), m.id)] == ["delivered"]


async def test_events_off_writes_none(r: aioredis.Redis, keyspace: Keyspace) -> None:
    h = await Harness(r, keyspace, Timing(events_max_len=0), Limits(events_max_len=0)).start()
    await h.connect("alice")
    m = await h.producer.send("alice", {"n": 1})
    await h.pump()
    assert await h.ack("alice", [m.id]) == {m.id: "ok"}
    await h.producer.send("nobody", {"n": 2})
    await h.pump()
    assert not [k for k in await h.keys() if k.endswith(":events")]


async def test_the_stream_is_capped(r: aioredis.Redis, keyspace: Keyspace) -> None:
    ks = Keyspace(keyspace.prefix, 1)
    h = await Harness(r, ks, Timing(events_max_len=1000), Limits(events_max_len=1000)).start()
    await h.producer.submit_many([{"user_id": "zed", "payload": i} for i in range(3000)])
    await h.pump()
    assert 1000 <= await r.xlen(ks.events(0)) < 1500  # MAXLEN ~ trims whole nodes


async def test_event_log_filters_by_user_and_type_and_pages(h: Harness) -> None:
    await h.connect("alice")
    ids = [(await h.producer.send(u, {"n": i})).id for i, u in enumerate(["alice", "bob"] * 3)]
    await h.pump()
    await h.ack("alice", ids[0::2])
    log = EventLog(h.r, keyspace=h.keyspace)
    newest = await log.recent(limit=10)
    assert len(newest) == 6 and newest == sorted(newest, key=lambda e: e.at_ms, reverse=True)
    bobs = await log.recent(users=["bob"])
    assert {e.message_id for e in bobs} == set(ids[1::2]) and {e.type for e in bobs} == {"parked"}
    assert {e.message_id for e in await log.recent(types="delivered")} == set(ids[0::2])
    first = await log.recent(limit=4)
    rest = await log.recent(limit=4, before=first[-1].id)
    assert [e.id for e in first + rest] == [e.id for e in newest]
    with pytest.raises(ValidationError, match="unknown event type 'lost'"):
        await log.recent(types=["lost"])

    async def tail() -> LifecycleEvent:
        events = log.tail(users=["alice"], types=["delivered"], block_ms=100)
        async with contextlib.aclosing(events):
            async for e in events:
                return e
        raise AssertionError("unreachable")

    waiting = asyncio.create_task(tail())
    await asyncio.sleep(0.2)
    await h.producer.send("bob", {"x": 1})  # another user: not shown
    late = await h.producer.send("alice", {"x": 2})
    await h.pump()
    await h.ack("alice", [late.id])
    got = await asyncio.wait_for(waiting, 5)
    assert (got.message_id, got.type) == (late.id, EventType.DELIVERED)


async def test_a_group_shares_the_events_and_takes_over_a_dead_consumers(h: Harness) -> None:
    a = EventGroup(h.r, keyspace=h.keyspace, group="billing", consumer="a", claim_idle_ms=200)
    b = EventGroup(h.r, keyspace=h.keyspace, group="billing", consumer="b", claim_idle_ms=200)
    other = EventGroup(h.r, keyspace=h.keyspace, group="crm", consumer="x")
    for g in (a, b, other):
        await g.ensure()
    await h.producer.submit_many([{"user_id": f"u{i}", "payload": i} for i in range(20)])
    await h.pump()  # 20 parked events
    got_a = await a.read(count=2, block_ms=100)  # (a count per stream)
    got_b = await b.read(count=100, block_ms=100)
    assert got_a and got_b and len(got_a) + len(got_b) == 20
    assert not {e.id for e in got_a} & {e.id for e in got_b}
    assert len(await other.read(count=100, block_ms=100)) == 20  # every group sees all
    await b.ack(got_b)
    # a "dies" without acking: b takes its events over once they are idle long enough
    assert await b.reclaim() == []
    await asyncio.sleep(0.3)
    taken = await b.reclaim()
    assert {e.id for e in taken} == {e.id for e in got_a}
    await b.ack(taken)
    for stream in (h.keyspace.events(p) for p in range(h.keyspace.partitions)):
        assert (await h.r.xpending(stream, "billing"))["pending"] == 0


async def _setid_calls(r: aioredis.Redis) -> int:
    stats = await r.info("commandstats")
    return int(stats.get("cmdstat_xgroup|setid", {}).get("calls", 0))


async def test_skipping_to_the_end_moves_the_group_and_writes_nothing_when_idle(
    h: Harness,
) -> None:
    """The webhook dispatcher with no endpoint: the group is moved past the events
    unread, and a stream with no new event since gets no write (no AOF traffic idle)."""
    g = EventGroup(h.r, keyspace=h.keyspace, group="webhooks", consumer="w")
    await g.ensure()
    await h.producer.submit_many([{"user_id": f"u{i}", "payload": i} for i in range(8)])
    await h.pump()  # parked events on several partitions
    await g.skip_to_end()
    assert await g.read(count=100, block_ms=0) == []  # nothing left to read
    before = await _setid_calls(h.r)
    await g.skip_to_end()  # idle: nothing new
    assert await _setid_calls(h.r) == before
    await h.producer.send("late", {"n": 1})
    await h.pump()
    await g.skip_to_end()
    assert await _setid_calls(h.r) == before + 1  # only the stream that grew
    assert await g.read(count=100, block_ms=0) == []


async def test_producer_events_iterates_acks_and_redelivers_what_was_not_handled(
    h: Harness,
) -> None:
    await h.connect("alice")
    m1 = await h.producer.send("alice", {"n": 1})
    m2 = await h.producer.send("alice", {"n": 2})
    sub = h.producer.events(
        "app", consumer="one", types=["delivered"], block_seconds=0.1, claim_idle_seconds=0.3
    )
    await sub.group.ensure()  # the group exists before the events (start "$")
    await h.producer.send("bob", {"n": 3})  # parked: filtered out, acked for this group
    await h.pump()
    await h.ack("alice", [m1.id, m2.id])
    seen = []
    with pytest.raises(RuntimeError):
        async with sub as events:
            async for e in events:
                seen.append(e.message_id)
                if len(seen) == 2:
                    raise RuntimeError("the handler failed on the second one")
    assert seen == [m1.id, m2.id]
    # the first was handled (the loop asked for the second): acked; the second was not
    again = h.producer.events("app", consumer="two", block_seconds=0.1, claim_idle_seconds=0.3)
    async with again as events:
        e = await asyncio.wait_for(events.__anext__(), 5)
    assert e.message_id == m2.id
    await wait_until(lambda: _pending(h, "app", 0))


async def _pending(h: Harness, group: str, n: int) -> bool:
    total = 0
    for p in range(h.keyspace.partitions):
        total += (await h.r.xpending(h.keyspace.events(p), group))["pending"]
    return total == n
