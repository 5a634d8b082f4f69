"""The batch scripts, called directly: ``dispatch_many.lua`` and ``ack_many.lua``.

Each answers entry by entry (frame by frame) exactly what its one-message script
answers, in the order given, and leaves the same keys behind.
"""

from __future__ import annotations

from delivery.clock import server_ms
from delivery.keys import GROUP
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
    args: list[object] = [GROUP, 300, 60_000, 1000, RETENTION]
    for mid in order:
        e = entries[mid]
        args += [e.entry_id, mid, e.user_id, e.priority]

    raw = await h.store.scripts.dispatch_many(keys=[ks.part(p)], args=args)

    assert len(raw) == 4
    c1 = await h.r.hget(ks.msg(first.id), "ca")
    c3 = await h.r.hget(ks.msg(third.id), "ca")
    target = f"{NODE}|c1".encode()
    assert raw[0] == [b"sent", 1, b'{"n":1}', c1, b"", b"", b"0", target]
    assert raw[1] == [b"parked"]
    assert raw[2] == [b"sent", 1, b'{"n":3}', c3, b"", b"", b"0", target]
    assert raw[3] == [b"skip", b"sent"]  # already sent by the first answer
    assert [await h.status(m) for m in (first.id, second.id, third.id)] == [
        "sent",
        "parked",
        "sent",
    ]
    # Every entry is acknowledged and deleted from its stream in the same call.
    for prio in ("high", "normal", "low"):
        stream = ks.stream(p, prio)
        assert await h.r.xlen(stream) == 0
        assert (await h.r.xpending(stream, GROUP))["pending"] == 0
    now = await server_ms(h.r)
    for mid in (first.id, third.id):
        deadline = await h.r.zscore(ks.key(p, "inflight"), mid)
        assert now < deadline <= now + 300
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
    args: list[object] = [RETENTION, 2]
    args += ["alice", "c1", NODE, 2, mids[0], mids[1]]
    args += ["mallory", "c7", NODE, 1, mids[2]]
    args += ["alice", "c1", NODE, 3, mids[2], missing, mids[0]]

    raw = await h.store.scripts.ack_many(keys=[ks.part(p)], args=args)

    assert len(raw) == 6
    codes = [r.decode().split("|")[0] for r in raw]
    # an id acked again after delivery is a harmless duplicate
    assert codes == ["ok", "ok", "forbidden", "ok", "unknown", "duplicate"]
    assert {await h.status(m) for m in mids} == {"delivered"}
    assert await h.r.zcard(ks.key(p, "inflight")) == 0
    stats = await h.r.hgetall(ks.user("alice", "user_stats"))
    assert stats[b"delivered"] == b"3" and stats[b"sent"] == b"0"
    # Only the last `samples` (2) latencies are kept.
    assert await h.r.llen(ks.user("alice", "user_latency")) == 2
    for mid in mids:
        last = (await raw_timeline(h.r, ks, mid))[-1]  # the duplicate added no event
        assert (last["e"], last["conn"]) == ("acked", "c1")
        assert 0 < await h.r.pttl(ks.msg(mid)) <= RETENTION


async def test_a_batch_that_fails_midway_keeps_what_it_did_consistent(h: Harness) -> None:
    """Redis keeps a failing script's writes; the writes a script gathers until its end
    (ack deadlines, counters) are made too, so a message marked `sent` before the error
    is still retried if its ack never comes."""
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
    args: list[object] = [GROUP, 300, 60_000, 1000, RETENTION]
    for mid in (ok.id, bad.id):
        e = entries[mid]
        args += [e.entry_id, mid, e.user_id, e.priority]

    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await h.store.scripts.dispatch_many(keys=[ks.part(p)], args=args)

    assert await h.status(ok.id) == "sent"
    assert await h.r.zscore(ks.key(p, "inflight"), ok.id) is not None
    stats = await h.r.hgetall(ks.user("alice", "user_stats"))
    assert stats[b"sent"] == b"1" and stats[b"queued"] == b"0"
