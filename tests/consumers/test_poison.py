from __future__ import annotations

import redis.asyncio as aioredis

from delivery.keys import GROUP, Keyspace
from delivery.producer import Limits
from delivery.store import Timing
from tests.support import Harness


async def test_reclaim_dead_letters_poison_entries_and_dispatches_the_others(
    r: aioredis.Redis, keyspace: Keyspace
) -> None:
    h = await Harness(r, keyspace, Timing(), Limits()).start()
    assert h.worker.poison_deliveries == 5
    await h.connect("alice")
    poison = (await h.producer.send("alice", {"bad": True})).id
    healthy = (await h.producer.send("alice", {"bad": False})).id
    p = keyspace.partition_of("alice")
    stream = keyspace.stream(p, "normal")

    # A consumer reads both entries and dies; the first one is then taken over (and
    # lost again) by five more consumers that die too: its delivery counter reaches 6.
    await r.xreadgroup(GROUP, "ghost-0", {stream: ">"})
    poison_entry, healthy_entry = [e for e, _ in await r.xrange(stream)]
    for i in range(1, 6):
        await r.xclaim(stream, GROUP, f"ghost-{i}", 0, [poison_entry], idle=60_000)
    await r.xclaim(stream, GROUP, "ghost-0", 0, [healthy_entry], idle=60_000, justid=True)
    counts = {
        row["message_id"]: row["times_delivered"]
        for row in await r.xpending_range(stream, GROUP, "-", "+", 10)
    }
    assert counts == {poison_entry: 6, healthy_entry: 1}

    assert await h.worker.reclaim(p) == 2

    # The poison entry is dead-lettered, never sent; the other one is delivered.
    assert await h.status(poison) == "dead"
    ((dlq_id, fields),) = await r.xrange(keyspace.key(p, "dlq"))
    assert fields[b"id"] == poison.encode() and fields[b"reason"] == b"poison"
    assert await r.hmget(keyspace.msg(poison), "le", "dl") == [b"poison", dlq_id]
    tl = (await h.store.get(poison)).timeline
    assert [e.event for e in tl] == ["queued", "dead"] and tl[-1].detail == {"reason": "poison"}
    assert [f["id"] for f in h.devices.frames["alice"]] == [healthy]
    assert await h.status(healthy) == "sent"
    # the healthy entry, claimed by this consumer, is now its in-flight record; the
    # poison one was acknowledged and trimmed
    (row,) = await r.xpending_range(stream, GROUP, "-", "+", 10)
    assert (row["message_id"], row["consumer"]) == (healthy_entry, b"test-consumer")
    assert [e for e, _ in await r.xrange(stream)] == [healthy_entry]
    assert await h.worker.reclaim(p) == 0  # nothing left to take over


async def test_reclaim_leaves_entries_of_a_live_consumer_alone(
    r: aioredis.Redis, keyspace: Keyspace
) -> None:
    h = await Harness(r, keyspace, Timing(), Limits()).start()
    await h.producer.send("alice", 1)
    p = keyspace.partition_of("alice")
    stream = keyspace.stream(p, "normal")
    await r.xreadgroup(GROUP, "busy", {stream: ">"})  # idle for less than the ack timeout
    assert await h.worker.reclaim(p) == 0
    pending = await r.xpending(stream, GROUP)
    assert pending["pending"] == 1 and pending["consumers"] == [{"name": b"busy", "pending": 1}]
