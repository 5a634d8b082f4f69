"""The batch scripts, called directly: ``dispatch_many.lua`` and ``ack_many.lua``.

Each answers entry by entry (frame by frame) exactly what its one-message script
answers, in the order given, and leaves the same keys behind.
"""

from __future__ import annotations

from dataclasses import replace

import redis.asyncio as aioredis

from delivery.edge_calls import AckRequest
from delivery.keys import GROUP, Keyspace
from delivery.producer import Limits
from delivery.store import Timing
from tests.support import NODE, Harness, raw_timeline

RETENTION = 3_600_000


async def test_dispatch_many(h: Harness) -> None:
    ks = h.keyspace
    # Two users of one partition: alice online, her neighbour offline.
    users = ["alice"]
    p = ks.partition_of("alice")
    i = 0
    while len(users) < 2:
        i += 1
        if ks.partition_of(f"u{i}") == p:
            users.append(f"u{i}")
    online, offline = users
    await h.connect(online, conn="c1")
    first = await h.producer.send(online, {"n": 1})
    second = await h.producer.send(offline, {"n": 2}, priority="high")
    third = await h.producer.send(online, {"n": 3}, priority="low")
    resp = await h.r.xreadgroup(GROUP, "probe", {s: ">" for s in ks.streams(p)})
    entries = {e.message_id: e for e in h.worker._entries(resp)}
    order = [first.id, second.id, third.id, first.id]  # the last one repeats the first
    args: list[object] = [60_000, 1000, RETENTION]
    for mid in order:
        e = entries[mid]
        args += [e.entry_id, mid, e.user_id, e.priority, ""]

    raw = await h.store.scripts.dispatch_many(keys=[ks.part(p)], args=args)

    target = f"{NODE}|c1".encode()
    assert raw == [
        *(b"sent", b"1", 1, target),
        b"parked",
        *(b"sent", b"1", 1, target),
        *(b"skip", b"sent"),  # already sent by the first answer
    ]
    assert [await h.status(m) for m in (first.id, second.id, third.id)] == [
        "sent",
        "parked",
        "sent",
    ]
    # The sent ones' entries stay pending (their in-flight records); the others are
    # acknowledged and trimmed in the same call.
    pending = {}
    for prio in ("high", "normal", "low"):
        stream = ks.stream(p, prio)
        rows = await h.r.xpending_range(stream, GROUP, "-", "+", 10)
        pending[prio] = [r["message_id"].decode() for r in rows]
        assert await h.r.xlen(stream) == len(rows)
    assert pending == {
        "high": [],
        "normal": [entries[first.id].entry_id],
        "low": [entries[third.id].entry_id],
    }
    for mid in (first.id, third.id):
        assert await h.r.hget(ks.msg(mid), "en") == entries[mid].entry_id.encode()
        assert (await raw_timeline(h.r, ks, mid))[-1]["e"] == "sent"
    assert await h.r.zscore(ks.user(offline, "parked"), second.id) is not None


async def test_ack_many(h: Harness) -> None:
    ks = h.keyspace
    p = ks.partition_of("alice")
    await h.connect("alice", conn="c1")
    mids = [(await h.producer.send("alice", {"n": n})).id for n in range(3)]
    await h.pump()
    assert {await h.status(m) for m in mids} == {"sent"}
    missing = f"{p}-{'b' * 20}"
    # Two frames of one connection and one of a stranger, in one call.
    args: list[object] = [RETENTION]
    args += ["alice", "c1", NODE, 2, mids[0], mids[1]]
    args += ["mallory", "c7", NODE, 1, mids[2]]
    args += ["alice", "c1", NODE, 3, mids[2], missing, mids[0]]

    raw = await h.store.scripts.ack_many(keys=[ks.part(p)], args=args)

    assert len(raw) == 7  # the server time, then one answer per id
    codes = [r.decode().split("|")[0] for r in raw[1:]]
    # an id acked again after delivery is a harmless duplicate
    assert codes == ["ok", "ok", "forbidden", "ok", "unknown", "duplicate"]
    assert {await h.status(m) for m in mids} == {"delivered"}
    assert (await h.r.xpending(ks.stream(p, "normal"), GROUP))["pending"] == 0
    assert await h.r.hget(ks.key(p, "reached"), "delivered") == b"3"
    for mid in mids:
        last = (await raw_timeline(h.r, ks, mid))[-1]  # the duplicate added no event
        assert (last["e"], last["conn"], last["node"]) == ("acked", "c1", NODE)
        assert 0 < await h.r.pttl(ks.msg(mid)) <= RETENTION


async def test_a_batch_that_fails_midway_keeps_what_it_did_consistent(h: Harness) -> None:
    """Redis keeps a failing script's writes; the writes a script gathers until its end
    (acknowledgements, totals) are made too, so a message marked `sent` before the error
    keeps its in-flight record and is retried if its ack never comes."""
    import pytest
    from redis.exceptions import ResponseError

    from tests.support import neighbour

    ks = h.keyspace
    p = ks.partition_of("alice")
    broken = neighbour(ks, "alice")
    await h.connect("alice", conn="c1")
    ok = await h.producer.send("alice", {"n": 1})
    bad = await h.producer.send(broken, {"n": 2})
    await h.r.set(ks.user(broken, "conns"), "not a zset")  # its dispatch will fail
    resp = await h.r.xreadgroup(GROUP, "probe", {s: ">" for s in ks.streams(p)})
    entries = {e.message_id: e for e in h.worker._entries(resp)}
    args: list[object] = [60_000, 1000, RETENTION]
    for mid in (ok.id, bad.id):
        e = entries[mid]
        args += [e.entry_id, mid, e.user_id, e.priority, ""]

    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await h.store.scripts.dispatch_many(keys=[ks.part(p)], args=args)

    assert await h.status(ok.id) == "sent" and await h.status(bad.id) == "queued"
    rows = await h.r.xpending_range(ks.stream(p, "normal"), GROUP, "-", "+", 10)
    assert {r["message_id"].decode() for r in rows} == {
        entries[ok.id].entry_id,
        entries[bad.id].entry_id,
    }
    assert await h.r.hget(ks.key(p, "reached"), "sent") == b"1"


async def test_one_call_acknowledges_more_than_a_chunk_of_records(
    r: aioredis.Redis, keyspace: Keyspace, timing: Timing
) -> None:
    """The acknowledgements of one call go out in chunks of 1,000 ids, each with the
    group name: 1,100 acks of one stream in one call leave nothing pending."""
    # an ack timeout longer than sending 1,100 messages takes on a loaded machine (the
    # fixture's 300 ms let the reclaimer take back the first ones before the ack came)
    h = await Harness(r, keyspace, replace(timing, ack_timeout_ms=60_000), Limits()).start()
    ks = h.keyspace
    p = ks.partition_of("alice")
    await h.connect("alice", conn="c1")
    accepted = await h.producer.submit_many(
        [{"user_id": "alice", "payload": i} for i in range(1_100)]
    )
    mids = [a.id for (a,) in accepted]
    await h.pump()
    stream = ks.stream(p, "normal")
    assert (await h.r.xpending(stream, GROUP))["pending"] == 1_100

    codes = await h.store.ack_many([AckRequest("alice", "c1", NODE, mids)])

    assert set(codes[0].values()) == {"ok"}
    assert (await h.r.xpending(stream, GROUP))["pending"] == 0
