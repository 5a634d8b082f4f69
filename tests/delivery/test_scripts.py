"""One test per Lua script: its return value and its effect on Redis keys."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import orjson
import pytest

from delivery.clock import server_ms
from delivery.enqueue import Limits, build, many_args
from delivery.exceptions import Conflict, NotFound
from delivery.keys import GROUP
from delivery.presence import Conn
from delivery.queries import Queries
from delivery.store import AckRequest, Entry
from tests.support import NODE, Harness, neighbour, raw_timeline

RETENTION = 3_600_000  # the `timing` fixture's retention


async def _read(h: Harness, user: str, consumer: str = "probe") -> list[Entry]:
    """Read the user's partition streams as a consumer of the group would."""
    p = h.keyspace.partition_of(user)
    resp = await h.r.xreadgroup(GROUP, consumer, {s: ">" for s in h.keyspace.streams(p)})
    return h.worker._entries(resp)


async def _sent(h: Harness, user: str = "alice", **options: object) -> str:
    """A message pushed to a connected device and not acked yet."""
    await h.connect(user)
    mid = (await h.producer.send(user, {"n": 1}, **options)).id
    await h.pump()
    assert await h.status(mid) == "sent"
    return mid


async def _parked(h: Harness, user: str = "alice", **options: object) -> str:
    mid = (await h.producer.send(user, {"n": 1}, **options)).id
    await h.pump()
    assert await h.status(mid) == "parked"
    return mid


async def _dead(h: Harness) -> str:
    mid = await _sent(h, max_attempts=1)
    assert await h.store.nack([mid], reason="boom") == {"dead": 1}
    return mid


async def _entry_of(h: Harness, mid: str) -> str:
    """The id of the last entry the message had (its in-flight record when sent)."""
    return (await h.r.hget(h.keyspace.msg(mid), "en")).decode()


def _events(tl: list[dict[str, object]]) -> list[object]:
    return [e["e"] for e in tl]


async def test_enqueue(h: Harness) -> None:
    ks, now = h.keyspace, await server_ms(h.r)
    (call,) = build(
        {
            "user_id": "alice",
            "payload": {"a": 1},
            "priority": "high",
            "ttl_seconds": 60,
            "topic": "t",
            "reply_requested": True,
            "idempotency_key": "i1",
            "collapse_key": "c1",
        },
        keyspace=ks,
        limits=Limits(),
    )
    mid = call.args()[0]
    res = await h.store.scripts.enqueue(keys=[call.prefix], args=call.args())
    assert res == [mid.encode(), b"queued", 1]

    key = ks.msg(mid)
    m = await h.r.hgetall(key)
    assert m[b"u"] == b"alice" and m[b"p"] == b"high" and orjson.loads(m[b"pl"]) == {"a": 1}
    assert m[b"s"] == b"queued" and m[b"ma"] == b"5" and m[b"rr"] == b"1"
    assert m[b"tp"] == b"t" and m[b"ik"] == b"i1" and m[b"ck"] == b"c1"
    # no attempt yet; the id is the key's; the ttl is ea - ca; the first event implied
    assert not {b"a", b"id", b"tl", b"n", b"e1"} & set(m)
    created = int(m[b"ca"])
    assert now <= created and int(m[b"ea"]) == created + 60_000
    assert await h.r.pttl(key) > 60_000 + 86_400_000 - 10_000  # ttl + retention
    p = ks.partition_of("alice")
    ((_, fields),) = await h.r.xrange(ks.stream(p, "high"))
    # the entry carries what the frame needs: dispatch reads neither payload nor options
    assert fields == {
        b"m": mid.encode(),
        b"u": b"alice",
        b"pl": m[b"pl"],
        b"ca": m[b"ca"],
        b"ck": b"c1",
        b"tp": b"t",
        b"rr": b"1",
    }
    assert await h.r.get(ks.user("alice", "idem", key="i1")) == mid.encode()
    assert await h.r.get(ks.user("alice", "collapse", key="c1")) == mid.encode()
    assert await h.r.zscore(ks.user("alice", "user_msgs"), mid) == created
    assert await h.r.hgetall(ks.key(p, "reached")) == {b"queued": b"1", b"enqueued": b"1"}

    # A delay: the delayed zset instead of a stream; a repeat of the key: no write.
    (later,) = build(
        {"user_id": "alice", "payload": 2, "delay_seconds": 5}, keyspace=ks, limits=Limits()
    )
    res = await h.store.scripts.enqueue(keys=[later.prefix], args=later.args())
    assert res[1:] == [b"scheduled", 1]
    due = await h.r.zscore(ks.key(p, "delayed"), later.args()[0])
    assert due == int(await h.r.hget(ks.msg(later.args()[0]), "ca")) + 5000
    (repeat,) = build(
        {"user_id": "alice", "payload": 3, "idempotency_key": "i1"}, keyspace=ks, limits=Limits()
    )
    res = await h.store.scripts.enqueue(keys=[repeat.prefix], args=repeat.args())
    assert res == [mid.encode(), b"queued", 0]
    assert await h.r.exists(ks.msg(repeat.args()[0])) == 0
    assert await h.r.xlen(ks.stream(p, "normal")) == 0
    assert await h.r.hgetall(ks.key(p, "reached")) == {
        b"queued": b"1",
        b"scheduled": b"1",
        b"enqueued": b"2",
    }


async def test_enqueue_many(h: Harness) -> None:
    ks = h.keyspace
    msgs = [
        {"user_id": "alice", "payload": 1, "idempotency_key": "a"},
        {"user_id": "alice", "payload": 2, "priority": "low"},
        {"user_id": "alice", "payload": 3, "idempotency_key": "a"},  # a repeat of the first
        {"user_id": "alice", "payload": 4, "delay_seconds": 5},
    ]
    calls = [c for m in msgs for c in build(m, keyspace=ks, limits=Limits())]
    args = many_args(calls)
    assert args[0] == 3  # option sets: the first and the third message share theirs

    res = await h.store.scripts.enqueue_many(keys=[calls[0].prefix], args=args)

    ids = [c.args()[0] for c in calls]
    # a created message answers its status; a repeat the id it repeats and its status
    assert res == [b"queued", b"queued", f"={ids[0]}|queued".encode(), b"scheduled"]
    assert await h.r.exists(ks.msg(ids[2])) == 0
    p = ks.partition_of("alice")
    assert [f[b"m"].decode() for _, f in await h.r.xrange(ks.stream(p, "normal"))] == [ids[0]]
    assert [f[b"m"].decode() for _, f in await h.r.xrange(ks.stream(p, "low"))] == [ids[1]]
    assert await h.r.zrange(ks.key(p, "delayed"), 0, -1) == [ids[3].encode()]
    # Each message is stored exactly as enqueue.lua stores one.
    (single,) = build(
        {"user_id": "alice", "payload": 2, "priority": "low"}, keyspace=ks, limits=Limits()
    )
    await h.store.scripts.enqueue(keys=[single.prefix], args=single.args())
    one, many = await h.r.hgetall(ks.msg(single.args()[0])), await h.r.hgetall(ks.msg(ids[1]))
    assert set(one) == set(many)
    for field in (b"u", b"p", b"pl", b"ma", b"s"):
        assert one[field] == many[field], field
    assert (await h.store.get(ids[1])).timeline[0].event == "queued"
    assert await h.r.hgetall(ks.key(p, "reached")) == {
        b"queued": b"3",
        b"scheduled": b"1",
        b"enqueued": b"4",
    }


async def test_dispatch(h: Harness) -> None:
    ks = h.keyspace
    p = ks.partition_of("alice")
    await h.connect("alice", conn="c1")
    on = await h.producer.send("alice", {"x": 1}, collapse_key="ck", topic="tp")
    off = await h.producer.send("bob", {"x": 2}, priority="low")
    (entry,) = await _read(h, "alice")
    before = await server_ms(h.r)

    raw = await h.store.scripts.dispatch(
        keys=[ks.part(p)],
        args=[entry.entry_id, on.id, "alice", "normal", "ck", 60_000, 1000, RETENTION],
    )
    assert raw == [b"sent", b"1", 1, f"{NODE}|c1".encode()]  # attempt, the connections
    # The entry stays pending with the probe consumer: the message's in-flight record.
    stream = ks.stream(p, "normal")
    assert await h.r.xlen(stream) == 1
    (row,) = await h.r.xpending_range(stream, GROUP, "-", "+", 10)
    assert (row["message_id"].decode(), row["consumer"]) == (entry.entry_id, b"probe")
    assert await h.r.hmget(ks.msg(on.id), "s", "a", "en") == [
        b"sent",
        b"1",
        entry.entry_id.encode(),
    ]
    sent = (await raw_timeline(h.r, ks, on.id))[-1]
    assert before <= sent.pop("t") <= await server_ms(h.r)
    assert sent == {"e": "sent", "a": 1, "to": [f"{NODE}|c1"]}

    # Offline user: parked, ranked by priority then age, with a park expiry.
    (entry,) = await _read(h, "bob")
    ((_, outcome, push),) = await h.store.dispatch([entry])
    assert (outcome, push) == ("parked", None)
    pb = ks.partition_of("bob")
    bcreated = int(await h.r.hget(ks.msg(off.id), "ca"))
    # score: priority (low = 2), then the entry id made with the message (ms since
    # 2024, then its sequence): the order in which messages were enqueued
    ems, seq = (int(x) for x in entry.entry_id.split("-"))
    assert bcreated <= ems <= bcreated + 1000
    score = (2 * 2**39 + ems - 1704067200000) * 4096 + min(seq, 4095)
    assert await h.r.zscore(ks.user("bob", "parked"), off.id) == score
    parkx = await h.r.zscore(ks.key(pb, "parkx"), off.id)
    assert parkx == (await raw_timeline(h.r, ks, off.id))[-1]["until"]
    assert 0 < await h.r.pttl(ks.user("bob", "parked")) <= h.store.timing.park_ttl_ms

    assert (await h.r.xpending(ks.stream(pb, "low"), GROUP))["pending"] == 0  # acked

    # The same message again, or one that is gone: skipped, their entries acked; the
    # sent message's own entry stays pending.
    await h.r.xadd(stream, {"m": on.id, "u": "alice"})
    await h.r.xadd(stream, {"m": f"{p}-{'0' * 20}", "u": "alice"})
    outcomes = [o for _, o, _ in await h.store.dispatch(await _read(h, "alice"))]
    assert outcomes == ["skip", "skip"]
    assert (await h.r.xpending(stream, GROUP))["pending"] == 1


async def test_dispatch_expires_a_message_past_its_ttl(h: Harness) -> None:
    await h.connect("alice")
    mid = (await h.producer.send("alice", 1)).id
    await h.r.hset(h.keyspace.msg(mid), "ea", await server_ms(h.r) - 1)
    ((_, outcome, push),) = await h.store.dispatch(await _read(h, "alice"))
    assert (outcome, push) == ("expired", None)
    assert await h.status(mid) == "expired"
    assert 0 < await h.r.pttl(h.keyspace.msg(mid)) <= RETENTION


async def test_dispatch_many_trims_only_below_the_oldest_pending_entry(h: Harness) -> None:
    """Entries leave the stream in one XTRIM per stream and batch, once every consumer
    is done with them: an entry read and not dispatched yet, or a sent message's entry
    (its in-flight record, until the ack), is never trimmed, nor what is above it, nor
    an entry nobody read yet."""
    ks = h.keyspace
    await h.connect("alice")
    stream = ks.stream(ks.partition_of("alice"), "normal")

    def ids(rows: list[tuple[bytes, dict[bytes, bytes]]]) -> list[str]:
        return [f[b"m"].decode() for _, f in rows]

    first = (await h.producer.send("alice", 1)).id
    held = h.worker._entries(await h.r.xreadgroup(GROUP, "slow", {stream: ">"}, count=1))
    later = [(await h.producer.send("alice", i)).id for i in (2, 3)]
    batch = await _read(h, "alice", consumer="fast")
    unread = (await h.producer.send("alice", 4)).id
    assert [e.message_id for e in batch] == later

    assert [o for _, o, _ in await h.store.dispatch(batch)] == ["sent", "sent"]
    assert ids(await h.r.xrange(stream)) == [first, *later, unread]
    assert (await h.r.xpending(stream, GROUP))["pending"] == 3  # slow's read, two sent

    assert await h.ack("alice", later) == dict.fromkeys(later, "ok")
    assert [o for _, o, _ in await h.store.dispatch(held)] == ["sent"]
    assert ids(await h.r.xrange(stream)) == [first, *later, unread]  # first is in flight
    assert await h.ack("alice", [first]) == {first: "ok"}
    assert (await h.r.xpending(stream, GROUP))["pending"] == 0
    assert [o for _, o, _ in await h.store.dispatch(await _read(h, "alice"))] == ["sent"]
    assert ids(await h.r.xrange(stream)) == [unread]  # all before it were acked
    assert await h.ack("alice", [unread]) == {unread: "ok"}
    assert await h.store.scripts.trim(keys=[ks.part_of_user("alice")], args=[]) == [0, 0, 0, 0]


async def test_batches_add_up_like_one_call_per_message(h: Harness) -> None:
    """Many messages of one user in each batch: the partition's totals, the user's
    index and the pending entries end up as one call per message would leave them."""
    ks = h.keyspace
    p = ks.partition_of("alice")
    await h.connect("alice")
    accepted = await h.producer.submit_many([{"user_id": "alice", "payload": i} for i in range(5)])
    ids = [a.id for (a,) in accepted]
    totals, stream = ks.key(p, "reached"), ks.stream(p, "normal")
    assert await h.r.hgetall(totals) == {b"queued": b"5", b"enqueued": b"5"}
    assert set(await h.r.zrange(ks.user("alice", "user_msgs"), 0, -1)) == {i.encode() for i in ids}

    assert [o for _, o, _ in await h.store.dispatch(await _read(h, "alice"))] == ["sent"] * 5
    assert await h.r.hgetall(totals) == {b"queued": b"5", b"enqueued": b"5", b"sent": b"5"}
    assert (await h.r.xpending(stream, GROUP))["pending"] == 5

    requests = [AckRequest("alice", "c1", NODE, ids[:2]), AckRequest("alice", "c1", NODE, ids[2:])]
    codes = await h.store.ack_many(requests)
    assert [c for r in codes for c in r.values()] == ["ok"] * 5
    assert await h.r.hgetall(totals) == {
        b"queued": b"5",
        b"enqueued": b"5",
        b"sent": b"5",
        b"delivered": b"5",
    }
    assert (await h.r.xpending(stream, GROUP))["pending"] == 0
    for mid in ids:
        assert _events(await raw_timeline(h.r, ks, mid)) == ["queued", "sent", "acked"]
    figures = await Queries(h.r, keyspace=ks).user_stats("alice")
    assert figures["counts"]["delivered"] == figures["total"] == 5
    assert figures["ack_latency_ms"]["samples"] == 5


async def test_user_keys_live_at_least_the_index_ttl_after_an_enqueue(h: Harness) -> None:
    """An enqueue that finds less than the index ttl left on the user's index sets it to
    17/16 of it; one that finds more leaves it (no PEXPIRE per message)."""
    ks = h.keyspace
    await h.producer.send("alice", 1)
    keys = [ks.user("alice", "user_msgs")]
    index_ttl = (30 + 1) * 86_400_000  # max ttl + retention of the default Limits
    for k in keys:
        await h.r.pexpire(k, index_ttl + 1000)
    await h.producer.send("alice", 2)
    assert [await h.r.pttl(k) for k in keys] == [
        pytest.approx(index_ttl + 1000, abs=5000) for _ in keys
    ]
    await h.r.pexpire(keys[0], index_ttl - 1000)  # less than the ttl left
    await h.producer.send("alice", 3)
    for k in keys:
        assert index_ttl + index_ttl // 16 - 5000 < await h.r.pttl(k) <= index_ttl + index_ttl // 16


async def test_user_index_is_capped(h: Harness) -> None:
    """The cap is checked when an id ends in 0 (one enqueue in 16: ids are random) or a
    call brings 16 and more: the index then keeps `cap` members (the oldest go first;
    these share a millisecond), and a ttl."""
    ks = h.keyspace
    index = ks.user("alice", "user_msgs")
    cap = 3

    def calls(n: int, last: str) -> list[Any]:
        out = [
            c
            for i in range(n)
            for c in build({"user_id": "alice", "payload": i}, keyspace=ks, limits=Limits())
        ]
        return [
            dataclasses.replace(c, id=c.id[:-1] + last, opts=c.opts._replace(index_cap=cap))
            for c in out
        ]

    async def enqueue(batch: list[Any]) -> None:
        args = many_args(batch)
        assert args[0] == 1 and len(args) == 1 + 14 + len(batch) * 4  # one option set
        res = await h.store.scripts.enqueue_many(keys=[ks.part_of_user("alice")], args=args)
        assert res == [b"queued"] * len(batch)

    await enqueue(calls(5, "1"))  # no id ends in 0, fewer than 16: not checked yet
    assert await h.r.zcard(index) == 5
    await enqueue(calls(1, "0"))  # checked: the oldest go
    kept = await h.r.zrange(index, 0, -1)
    assert len(kept) == cap and 0 < await h.r.pttl(index)
    await enqueue(calls(16, "1"))  # sixteen in one call: checked too
    assert await h.r.zcard(index) == cap


async def test_ack(h: Harness) -> None:
    ks = h.keyspace
    mid = await _sent(h)
    p = ks.partition_of("alice")
    stream = ks.stream(p, "normal")
    assert (await h.r.xpending(stream, GROUP))["pending"] == 1  # its in-flight record
    raw = await h.store.scripts.ack(
        keys=[ks.part(p)], args=["alice", "c1", NODE, RETENTION, mid, mid]
    )
    created = await h.r.hget(ks.msg(mid), "ca")
    assert raw[1:] == [b"ok|normal|" + created, b"duplicate"]  # the same id twice in one call
    assert int(created) <= int(raw[0]) <= await server_ms(h.r)  # the server time
    m = await h.r.hgetall(ks.msg(mid))
    assert m[b"s"] == b"delivered" and m[b"da"] == raw[0]
    assert (await h.r.xpending(stream, GROUP))["pending"] == 0  # acknowledged with it
    assert 0 < await h.r.pttl(ks.msg(mid)) <= RETENTION
    assert await h.r.hget(ks.key(p, "reached"), "delivered") == b"1"
    # Final, forbidden and unknown ids change nothing.
    dead = await _dead(h)
    other = neighbour(ks, "alice")
    missing = f"{p}-{'a' * 20}"
    raw = await h.store.scripts.ack(
        keys=[ks.part(p)], args=[other, "c", NODE, RETENTION, mid, dead, missing]
    )
    assert raw[1:] == [b"forbidden", b"forbidden", b"unknown"]
    # A dead message acked late (its edge stalled): delivered, out of the dead letters.
    assert await h.r.xlen(ks.key(p, "dlq")) == 1
    raw = await h.store.scripts.ack(keys=[ks.part(p)], args=["alice", "c", NODE, RETENTION, dead])
    assert raw[1].decode().startswith("ok|") and await h.status(dead) == "delivered"
    assert await h.r.xlen(ks.key(p, "dlq")) == 0
    m = await h.r.hgetall(ks.msg(dead))
    assert b"dl" not in m and 0 < await h.r.pttl(ks.msg(dead)) <= RETENTION
    assert (await raw_timeline(h.r, ks, dead))[-1]["late"] is True
    assert await h.r.hget(ks.key(p, "reached"), "delivered") == b"2"


async def test_reclaim(h: Harness) -> None:
    """What waited in the group past the ack timeout (300 ms here), claimed and sorted
    out: an overdue send is answered for a retry, a read entry nobody dispatched is
    answered for dispatch, a leftover is acknowledged; fresh entries stay as they are."""
    ks = h.keyspace
    p = ks.partition_of("alice")
    prefix, stream = ks.part(p), ks.stream(p, "normal")
    late = await _sent(h)
    unsent = (await h.producer.send("alice", 2)).id
    await _read(h, "alice", consumer="dead-reader")  # read, then its consumer died
    gone = (await h.producer.send("alice", 3)).id
    await _read(h, "alice", consumer="dead-reader")
    await h.r.delete(ks.msg(gone))  # its hash expired meanwhile
    await asyncio.sleep(0.35)
    fresh = (await h.producer.send("alice", 4)).id
    assert [o for _, o, _ in await h.store.dispatch(await _read(h, "alice"))] == ["sent"]
    args = ["w1", 300, 10, 5, 100, 604_800_000, "", "", "", ""]  # each stream's front

    res = await h.store.scripts.reclaim(keys=[prefix], args=args)

    late_entry = await h.r.hget(ks.msg(late), "en")
    assert res[:4] == [b""] * 4  # the front was overdue: claimed from there to the end
    assert res[4:8] == [1, late.encode(), late_entry, b"1"]  # overdue: id, record, attempts
    assert res[8] == 1 and res[9] == b"normal"  # one entry to dispatch, as its stream holds it
    assert res[11] == 2  # deliveries: the dead reader's and this claim
    fields = dict(zip(res[13 : 13 + res[12]][::2], res[13 : 13 + res[12]][1::2], strict=True))
    assert fields[b"m"] == unsent.encode() and res[-1] == 0  # nothing buried
    rows = {
        r["message_id"]: r["consumer"]
        for r in await h.r.xpending_range(stream, GROUP, "-", "+", 10)
    }
    fresh_entry = await h.r.hget(ks.msg(fresh), "en")
    assert rows == {late_entry: b"w1", res[10]: b"w1", fresh_entry: b"probe"}
    assert await h.status(late) == "sent" and await h.status(unsent) == "queued"

    # The worker does the rest: retries the overdue one, dispatches the other.
    await h.worker.reclaim(p)  # nothing is overdue now (just claimed): a no-op
    assert await h.status(late) == "sent"
    found = await h.store.reclaim([p], consumer="w1", cursors={}, count=10)
    assert found[0].overdue == [] and found[0].entries == []
    # A full scan finds what a claim put behind a fresher entry at the front (the
    # claimed ones are fresh now, the sent `fresh` one is not overdue either).
    scan = await h.store.reclaim([p], consumer="w1", cursors={p: ("0-0",) * 4}, count=10)
    assert scan[0].overdue == [] and scan[0].cursors == ("",) * 4


async def test_retry(h: Harness) -> None:
    ks = h.keyspace
    p = ks.partition_of("alice")
    prefix, stream, delayed = ks.part(p), ks.stream(p, "normal"), ks.key(p, "delayed")
    mid = await _sent(h)
    record = await h.r.hget(ks.msg(mid), "en")
    args = ["ack_timeout", RETENTION, 100, 604_800_000]

    # Another in-flight record (the message was sent again since): nothing changes.
    assert await h.store.scripts.retry(keys=[prefix], args=[*args, mid, "1-1", 500]) == [b"skip"]
    assert await h.status(mid) == "sent" and (await h.r.xpending(stream, GROUP))["pending"] == 1

    now = await server_ms(h.r)
    assert await h.store.scripts.retry(keys=[prefix], args=[*args, mid, record, 500]) == [
        b"scheduled"
    ]
    due = await h.r.zscore(delayed, mid)
    assert now + 500 <= due <= await server_ms(h.r) + 500
    assert (await h.r.xpending(stream, GROUP))["pending"] == 0  # its record acknowledged
    assert await h.r.hmget(ks.msg(mid), "s", "le") == [b"scheduled", b"ack_timeout"]
    last = (await raw_timeline(h.r, ks, mid))[-1]
    assert last == {"e": "retry", "a": 1, "t": due - 500, "due": due, "reason": "ack_timeout"}
    assert await h.store.scripts.retry(keys=[prefix], args=[*args, mid, "", 0]) == [b"skip"]

    # Attempts used up: dead, with a DLQ entry. Ttl ends before the delay: expired.
    used = await _sent(h, max_attempts=1)
    short = await _sent(h, ttl_seconds=2)
    res = await h.store.scripts.retry(
        keys=[prefix],
        args=[*args, used, "", 0, short, "", 5000],  # '': whichever record
    )
    assert res == [b"dead", b"expired"]
    # A push that reached nobody gives its attempt back and never buries the message.
    nobody = await _sent(h, max_attempts=1)
    res = await h.store.scripts.retry(
        keys=[prefix], args=["unreachable", RETENTION, 100, 604_800_000, nobody, "", 0]
    )
    assert res == [b"scheduled"]
    assert await h.r.hmget(ks.msg(nobody), "s", "a") == [b"scheduled", b"0"]
    assert await h.status(used) == "dead" and await h.status(short) == "expired"
    ((entry_id, fields),) = await h.r.xrange(ks.key(p, "dlq"))
    assert fields[b"id"] == used.encode() and fields[b"reason"] == b"ack_timeout"
    assert await h.r.hget(ks.msg(used), "dl") == entry_id
    assert (await h.r.xpending(stream, GROUP))["pending"] == 0


async def test_promote(h: Harness) -> None:
    ks = h.keyspace
    p = ks.partition_of("alice")
    soon = (await h.producer.send("alice", 1, delay_seconds=0.05, priority="high")).id
    later = (await h.producer.send("alice", 2, delay_seconds=60)).id
    gone = (await h.producer.send("alice", 3, delay_seconds=0.05, ttl_seconds=1)).id
    await h.r.hset(ks.msg(gone), "ea", 0)  # its ttl already passed
    later_due = await h.r.zscore(ks.key(p, "delayed"), later)
    await asyncio.sleep(0.06)

    res = await h.store.scripts.promote(keys=[ks.part(p)], args=[10, RETENTION])

    assert res == [2, str(int(later_due)).encode()]  # moved, next due time
    ((_, fields),) = await h.r.xrange(ks.stream(p, "high"))
    created = await h.r.hget(ks.msg(soon), "ca")
    assert fields == {b"m": soon.encode(), b"u": b"alice", b"pl": b"1", b"ca": created}
    assert await h.status(soon) == "queued" and await h.status(gone) == "expired"
    assert (await raw_timeline(h.r, ks, soon))[-1]["from"] == "scheduled"
    assert await h.r.zrange(ks.key(p, "delayed"), 0, -1) == [later.encode()]
    assert await h.store.promote(p) == (0, int(later_due))


async def test_expire(h: Harness) -> None:
    ks = h.keyspace
    p = ks.partition_of("alice")
    old = await _parked(h)
    young = await _parked(h)
    parkx = ks.key(p, "parkx")
    await h.r.zadd(parkx, {old: 0}, xx=True)

    assert await h.store.scripts.expire(keys=[ks.part(p)], args=[10, RETENTION]) == 1

    assert await h.status(old) == "expired" and await h.status(young) == "parked"
    assert await h.r.zrange(parkx, 0, -1) == [young.encode()]
    assert await h.r.zrange(ks.user("alice", "parked"), 0, -1) == [young.encode()]
    assert 0 < await h.r.pttl(ks.msg(old)) <= RETENTION
    assert (await raw_timeline(h.r, ks, old))[-1]["e"] == "expired"


async def test_unpark(h: Harness) -> None:
    ks = h.keyspace
    p = ks.partition_of("alice")
    low = await _parked(h, priority="low")
    high = await _parked(h, priority="high", topic="tp", reply_requested=True)
    normal = await _parked(h)

    res = await h.store.scripts.unpark(keys=[ks.part(p)], args=["alice", "n1", "c7", 2, RETENTION])

    assert res[0] == 1  # one still parked (the low one)
    created = await h.r.hget(ks.msg(high), "ca")
    # each handed to the device gets an entry in the drained stream, read by the node's
    # consumer at once: the pending entry is its in-flight record
    drained = ks.drained(p)
    (first, second) = await h.r.xrange(drained)
    assert first[1] == {b"m": high.encode(), b"u": b"alice"}
    assert second[1] == {b"m": normal.encode(), b"u": b"alice"}
    record = b"d" + first[0]
    assert res[1:10] == [
        high.encode(),
        b"1",
        b"high",
        b'{"n":1}',
        created,
        b"",
        b"tp",
        b"1",
        record,
    ]
    assert res[12] == b"normal" and len(res) == 19
    assert await h.r.hmget(ks.msg(high), "s", "en") == [b"sent", record]
    rows = await h.r.xpending_range(drained, GROUP, "-", "+", 10)
    assert [(r["message_id"], r["consumer"]) for r in rows] == [
        (first[0], b"n1"),
        (second[0], b"n1"),
    ]
    assert await h.r.zrange(ks.user("alice", "parked"), 0, -1) == [low.encode()]
    assert await h.r.zrange(ks.key(p, "parkx"), 0, -1) == [low.encode()]
    assert (await raw_timeline(h.r, ks, high))[-1]["to"] == ["n1|c7"]
    # the ack takes the record out of the drained stream's pending list
    assert await h.ack("alice", [high, normal], conn="c7") == {high: "ok", normal: "ok"}
    assert (await h.r.xpending(drained, GROUP))["pending"] == 0
    assert await h.store.scripts.trim(keys=[ks.part(p)], args=[]) == [0, 0, 0, 0]


async def test_reclaim_buries_an_entry_claimed_too_often(h: Harness) -> None:
    """A read entry whose dispatch never succeeds is claimed again each ack timeout;
    past the poison limit it is acknowledged and its message dead-lettered."""
    ks = h.keyspace
    p = ks.partition_of("alice")
    mid = (await h.producer.send("alice", 1)).id
    (entry,) = await _read(h, "alice")
    stream = ks.stream(p, "normal")
    args = ["w1", 0, 10, 1, 100, 604_800_000, "", "", "", ""]
    res = await h.store.scripts.reclaim(keys=[ks.part(p)], args=args)  # claimed: 2 deliveries
    assert res[4:] == [0, 0, 1, entry.entry_id.encode(), mid.encode()]  # buried only
    assert (await h.r.xpending(stream, GROUP))["pending"] == 0
    ((entry_id, fields),) = await h.r.xrange(ks.key(p, "dlq"))
    assert fields == {b"id": mid.encode(), b"u": b"alice", b"reason": b"poison", b"attempts": b"0"}
    assert await h.r.hmget(ks.msg(mid), "s", "le", "dl") == [b"dead", b"poison", entry_id]


async def test_replay(h: Harness) -> None:
    ks = h.keyspace
    p = ks.partition_of("alice")
    mid = await _dead(h)
    assert await h.r.xlen(ks.key(p, "dlq")) == 1
    prefix = ks.part(p)

    assert await h.store.scripts.replay(keys=[prefix], args=[mid, RETENTION, "ops"]) == b"replayed"

    m = await h.r.hgetall(ks.msg(mid))
    assert m[b"s"] == b"queued" and m[b"a"] == b"0" and b"dl" not in m
    assert int(m[b"ea"]) > await server_ms(h.r) + 604_800_000 - 10_000  # a fresh ttl
    assert await h.r.xlen(ks.key(p, "dlq")) == 0
    # its entry (the old one was acknowledged when it died, then trimmed) and the new one
    ((_, fields),) = await h.r.xrange(ks.stream(p, "normal"), min="(" + (await _entry_of(h, mid)))
    assert fields[b"m"] == mid.encode() and fields[b"pl"] == b'{"n":1}'
    last = (await raw_timeline(h.r, ks, mid))[-1]
    assert (last["e"], last["a"], last["by"]) == ("replayed", 1, "ops")
    await h.pump()
    assert [f["attempt"] for f in h.devices.frames["alice"]] == [1, 1]  # a fresh cycle
    assert await h.store.scripts.replay(keys=[prefix], args=[mid, RETENTION, "x"]) == b"sent"
    with pytest.raises(Conflict):
        await h.store.replay(mid)
    with pytest.raises(NotFound):
        await h.store.replay(f"{p}-{'b' * 20}")


async def test_a_second_replay_before_dispatch_is_refused(h: Harness) -> None:
    # replay.lua answered 'queued' both for "replayed" and for "queued, not dead"
    mid = await _dead(h)
    assert await h.store.replay(mid, by="ops") == "queued"
    with pytest.raises(Conflict, match="is queued, not dead"):
        await h.store.replay(mid, by="ops")
    replayed = [e for e in await raw_timeline(h.r, h.keyspace, mid) if e["e"] == "replayed"]
    assert len(replayed) == 1
    p = h.keyspace.partition_of("alice")
    stream = h.keyspace.stream(p, "normal")
    entries = await h.r.xrange(stream, min="(" + (await _entry_of(h, mid)))
    assert len(entries) == 1  # queued once


async def test_purge(h: Harness) -> None:
    ks = h.keyspace
    p = ks.partition_of("alice")
    mid = await _dead(h)
    prefix = ks.part(p)

    assert await h.store.scripts.purge(keys=[prefix], args=[mid]) == b"purged"

    assert await h.r.xlen(ks.key(p, "dlq")) == 0
    assert await h.r.hget(ks.msg(mid), "dl") is None and await h.status(mid) == "dead"
    assert (await raw_timeline(h.r, ks, mid))[-1]["e"] == "purged"
    assert await h.store.scripts.purge(keys=[prefix], args=[mid]) == b"dead"  # already purged
    with pytest.raises(Conflict):
        await h.store.purge(mid)
    with pytest.raises(NotFound):
        await h.store.purge(f"{p}-{'c' * 20}")


async def test_connect(h: Harness) -> None:
    ks = h.keyspace
    before = await server_ms(h.r)
    now = await h.store.scripts.connect(
        keys=[ks.part_of_user("alice")],
        args=["alice", "c1", "n1", 5000, 0, 2500, "device", "ios"],
    )
    assert before <= now <= await server_ms(h.r)
    conns = ks.user("alice", "conns")
    assert await h.r.zrange(conns, 0, -1, withscores=True) == [(b"n1|c1", float(now))]
    conn = ks.user("alice", "conn", conn="c1")
    assert await h.r.hgetall(conn) == {
        b"user": b"alice",
        b"node": b"n1",
        b"device": b"ios",
        b"connected_at": str(now).encode(),
        b"last_seen": str(now).encode(),
    }
    assert 4000 < await h.r.pttl(conns) <= 5000 and 4000 < await h.r.pttl(conn) <= 5000
    # at most 1 live connection: another one is refused with nothing written, the same
    # one again (a reconnect that kept its id) is not
    full = await h.store.scripts.connect(
        keys=[ks.part_of_user("alice")], args=["alice", "c2", "n1", 5000, 1, 2500]
    )
    assert full == b"full" and not await h.r.exists(ks.user("alice", "conn", conn="c2"))
    again = await h.store.scripts.connect(
        keys=[ks.part_of_user("alice")], args=["alice", "c1", "n1", 5000, 1, 2500]
    )
    assert isinstance(again, int)


async def test_touch(h: Harness) -> None:
    ks = h.keyspace
    bob = neighbour(ks, "alice")  # one script call refreshes one partition
    first = await h.presence.connect(Conn("alice", "c1", "n1"))
    await asyncio.sleep(0.01)

    restored = await h.store.scripts.touch(
        keys=[ks.part_of_user("alice")], args=[90_000, "alice", "c1", "n1", bob, "c2", "n1"]
    )

    assert restored == [b"c2"]  # presence had lost bob's c2: the node drains it again
    now = int(await h.r.zscore(ks.user("alice", "conns"), "n1|c1"))
    assert now > first
    conn = ks.user("alice", "conn", conn="c1")
    assert await h.r.hget(conn, "last_seen") == str(now).encode()
    assert await h.r.hget(conn, "connected_at") == str(first).encode()
    assert 80_000 < await h.r.pttl(conn) <= 90_000
    assert 80_000 < await h.r.pttl(ks.user("alice", "conns")) <= 90_000
    # A connection whose hash is gone gets its presence entry back, never a half hash.
    assert await h.r.zscore(ks.user(bob, "conns"), "n1|c2") == now
    assert await h.r.exists(ks.user(bob, "conn", conn="c2")) == 0


async def test_disconnect(h: Harness) -> None:
    ks = h.keyspace
    p = ks.partition_of("alice")
    await h.presence.connect(Conn("alice", "c2", NODE))  # a second device
    mid = await _sent(h)  # pushed to both; c1 leaves first
    prefix = ks.part(p)

    n = await h.store.scripts.disconnect(
        keys=[prefix], args=["alice", "c1", NODE, 60_000, "closed", mid]
    )
    assert n == 0 and await h.status(mid) == "sent"  # another device is still online
    assert await h.r.exists(ks.user("alice", "conn", conn="c1")) == 0

    n = await h.store.scripts.disconnect(
        keys=[prefix], args=["alice", "c2", NODE, 60_000, "closed", mid]
    )
    assert n == 1 and await h.status(mid) == "queued"  # handed back at once
    assert await h.r.exists(ks.user("alice", "conns")) == 0
    stream = ks.stream(p, "normal")
    assert (await h.r.xpending(stream, GROUP))["pending"] == 0  # its record acknowledged
    ((_, fields),) = await h.r.xrange(stream)  # a new entry; the old one was trimmed
    assert fields[b"m"] == mid.encode() and fields[b"pl"] == b'{"n":1}'
    last = (await raw_timeline(h.r, ks, mid))[-1]
    assert (last["e"], last["conn"], last["reason"]) == ("handed_back", "c2", "closed")
    h.devices.online.discard("alice")
    await h.pump()
    assert await h.status(mid) == "parked"  # nobody is left: parked for the next device


async def test_reply(h: Harness) -> None:
    ks = h.keyspace
    p = ks.partition_of("alice")
    mid = await _sent(h, reply_requested=True)
    plain = await _sent(h)
    pubsub = h.r.pubsub()
    await pubsub.subscribe(ks.replies_channel(mid))
    await pubsub.get_message(timeout=1)  # the subscribe confirmation

    res = await h.store.scripts.reply(
        keys=[ks.part(p)],
        args=["alice", "c1", mid, b'{"ok":true}', ks.replies_channel(mid), RETENTION],
    )

    assert res == b"ok"
    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=2)
    assert msg is not None and msg["data"] == b'{"ok":true}'
    await pubsub.aclose()
    m = await h.r.hgetall(ks.msg(mid))
    assert m[b"rp"] == b'{"ok":true}' and m[b"s"] == b"delivered"
    tl = await raw_timeline(h.r, ks, mid)
    assert [e["e"] for e in tl[-2:]] == ["replied", "acked"] and tl[-1]["via"] == "reply"
    assert (await h.r.xpending(ks.stream(p, "normal"), GROUP))["pending"] == 1  # plain's only
    assert (
        await h.store.reply(user_id="alice", conn_id="c1", message_id=mid, data=b"1") == "duplicate"
    )
    assert (
        await h.store.reply(user_id="alice", conn_id="c1", message_id=plain, data=b"1")
        == "not_requested"
    )
    other = neighbour(ks, "alice")
    assert await h.store.reply(user_id=other, conn_id="c", message_id=mid, data=b"1") == "forbidden"
    assert (
        await h.store.reply(user_id="alice", conn_id="c1", message_id=f"{p}-{'d' * 20}", data=b"1")
        == "unknown"
    )
    assert await h.status(plain) == "sent"


async def test_replay_after_the_users_index_expired_leaves_no_immortal_key(
    h: Harness,
) -> None:
    """A message dead near the end of a long ttl may be replayed after the user's index
    expired; the keys its new life touches must expire again, after it."""
    ks = h.keyspace
    mid = await _dead(h)
    index = ks.user("alice", "user_msgs")
    await h.r.delete(index)  # what its expiry would have done

    await h.store.replay(mid)
    await h.pump()
    await h.ack("alice", [mid])

    assert await h.status(mid) == "delivered"
    expires = int(await h.r.hget(ks.msg(mid), "ea"))
    assert not await h.r.exists(index)  # a replay adds nothing to the index
    await h.producer.send("alice", 2)  # the next enqueue makes it again, with a ttl
    assert await h.r.pttl(index) >= expires + RETENTION - await server_ms(h.r) - 10_000
