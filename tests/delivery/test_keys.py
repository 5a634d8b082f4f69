"""The exact Redis footprint of one message's whole life, stage by stage.

This test documents the layout of ``delivery/keys.py``: if a script starts writing a
new key, or stops expiring one, it fails here first.
"""

from __future__ import annotations

from delivery.keys import PRIORITIES
from tests.support import NODE, Harness

DAY_MS = 86_400_000
PRESENCE_TTL_MS = 120_000  # heartbeat timeout (60 s) x 2
USER_INDEX_TTL_MS = 31 * DAY_MS  # max ttl (30 days) + retention (1 day)
# set to 1/16 more whenever less than that is left (see flush_user in _lib.lua)
USER_KEYS_TTL_MS = USER_INDEX_TTL_MS + USER_INDEX_TTL_MS // 16
MESSAGE_TTL_MS = 8 * DAY_MS  # ttl (7 days) + retention (1 day)


async def _ttls(h: Harness) -> dict[str, int]:
    return {k: await h.r.pttl(k) for k in await h.keys()}


def _about(ttl: int, expected: int, slack: int = 10_000) -> bool:
    return expected - slack < ttl <= expected


async def test_exact_keys_and_ttls_through_a_full_lifecycle(h: Harness) -> None:
    ks = h.keyspace
    p = ks.partition_of("alice")
    # ensure_groups made an (empty) stream with the consumer group for every priority of
    # every partition, and the partition's drained stream: these exist from the start
    # and never expire.
    streams = {ks.stream(q, prio) for q in range(ks.partitions) for prio in PRIORITIES}
    streams |= {ks.drained(q) for q in range(ks.partitions)}
    assert await h.keys() == streams
    for s in streams:
        assert await h.r.pttl(s) == -1 and await h.r.xlen(s) == 0
        assert [g["name"] for g in await h.r.xinfo_groups(s)] == [b"couriers"]

    # 1. A device of alice connects: presence keys, with the presence TTL, plus the
    #    node's set of connections (no TTL: emptied on disconnect, or deleted by the
    #    dead-node sweep, like the `nodes` zset).
    await h.connect("alice")
    presence = {ks.user("alice", "conns"), ks.user("alice", "conn", conn="c1")}
    node_set = ks.node_conns(NODE)
    ttls = await _ttls(h)
    assert set(ttls) == streams | presence | {node_set}
    assert all(_about(ttls[k], PRESENCE_TTL_MS) for k in presence)
    assert ttls[node_set] == -1
    assert await h.r.smembers(node_set) == {b"alice|c1"}
    assert await h.r.zrange(ks.user("alice", "conns"), 0, -1) == [f"{NODE}|c1".encode()]
    conn = await h.r.hgetall(ks.user("alice", "conn", conn="c1"))
    assert set(conn) == {b"user", b"node", b"connected_at", b"last_seen", b"device"}

    # 2. Enqueue: the message hash, alice's index, the partition's totals (no TTL: one
    #    hash per partition), one stream entry carrying what the frame needs.
    sent = await h.producer.send("alice", {"text": "hi"})
    msg = ks.msg(sent.id)
    index, totals = ks.user("alice", "user_msgs"), ks.key(p, "reached")
    stream = ks.stream(p, "normal")
    ttls = await _ttls(h)
    assert set(ttls) == streams | presence | {node_set, msg, index, totals}
    assert _about(ttls[msg], MESSAGE_TTL_MS)
    assert _about(ttls[index], USER_KEYS_TTL_MS)
    assert ttls[totals] == -1 and await h.r.hgetall(totals) == {b"queued": b"1", b"enqueued": b"1"}
    # (no attempts yet; the ttl is expires - created; the first event, queued at
    # created, is implied)
    assert set(await h.r.hkeys(msg)) == {b"u", b"p", b"pl", b"ca", b"ea", b"ma", b"s"}
    ((entry, fields),) = await h.r.xrange(stream)
    assert set(fields) == {b"m", b"u", b"pl", b"ca"}

    # 3. Dispatched to the device: no key more. The stream entry stays, pending in the
    #    consumer group: the message's in-flight record, which the hash names (`en`).
    await h.pump()
    ttls = await _ttls(h)
    assert set(ttls) == streams | presence | {node_set, msg, index, totals}
    assert await h.r.xlen(stream) == 1
    (row,) = await h.r.xpending_range(stream, "couriers", "-", "+", 10)
    assert row["message_id"] == entry
    assert await h.r.hmget(msg, "s", "a", "en") == [b"sent", b"1", entry]
    assert set(await h.r.hkeys(msg)) == {
        *(b"u", b"p", b"pl", b"ca", b"ea", b"ma", b"s"),
        *(b"a", b"en", b"n", b"e2"),
    }
    for s in streams - {stream}:
        assert await h.r.xlen(s) == 0 and (await h.r.xpending(s, "couriers"))["pending"] == 0

    # 4. Acked: the record is acknowledged (the entry leaves the stream with the next
    #    trim), the message hash is kept for the retention only; the partition's events
    #    stream has its `delivered` event (no TTL: capped by MAXLEN ~
    #    COURIER_EVENTS_MAX_LEN).
    assert await h.ack("alice", [sent.id]) == {sent.id: "ok"}
    events = ks.events(p)
    ttls = await _ttls(h)
    assert set(ttls) == streams | presence | {node_set, msg, index, totals, events}
    assert _about(ttls[msg], h.store.timing.retention_ms)
    assert _about(ttls[index], USER_KEYS_TTL_MS)
    ((_, event),) = await h.r.xrange(events)
    assert {k: v for k, v in event.items() if k not in (b"t", b"lat")} == {
        b"e": b"delivered",
        b"id": sent.id.encode(),
        b"u": b"alice",
        b"a": b"1",
        b"conn": b"c1",
        b"node": NODE.encode(),
    }
    for key, ttl in ttls.items():
        if key in streams or key in (node_set, totals, events):
            assert ttl == -1, key
        else:
            assert ttl > 0, key  # everything else has a bounded life
    assert (await h.r.xpending(stream, "couriers"))["pending"] == 0
    assert await h.r.hgetall(totals) == {
        b"queued": b"1",
        b"enqueued": b"1",
        b"sent": b"1",
        b"delivered": b"1",
    }
    assert await h.r.zrange(index, 0, -1) == [sent.id.encode()]
    assert b"da" in await h.r.hkeys(msg)
    assert not any(
        ":dlq" in k or k.endswith(":nodes") or ":idem:" in k or ":ck:" in k for k in ttls
    )
    await h.scheduler.tick()  # its trim
    assert await h.r.xlen(stream) == 0

    # 5. The device disconnects: every presence key is gone, the node set too.
    await h.disconnect("alice")
    assert await h.keys() == streams | {msg, index, totals, events}


async def test_user_ids_with_colons_never_share_a_key_with_another_user(h: Harness) -> None:
    # "a" + "b:c" and "a:b" + "c" would both read "a:b:c" without the length prefix.
    first = await h.producer.send("a", 1, idempotency_key="b:c", collapse_key="b:c")
    second = await h.producer.send("a:b", 2, idempotency_key="c", collapse_key="c")
    assert first.id != second.id and second.created  # not taken for a repeat of the first
    await h.producer.task_status("b:c", "a", "running", progress=10)
    await h.producer.task_status("c", "a:b", "running", progress=90)
    assert (await h.producer.get_task("b:c", "a"))["progress"] == 10
    assert (await h.producer.get_task("c", "a:b"))["progress"] == 90
    ks = h.keyspace
    assert await h.r.get(ks.user("a", "idem", key="b:c")) == first.id.encode()
    assert await h.r.get(ks.user("a:b", "idem", key="c")) == second.id.encode()
    assert ks.user("a", "task", task="b:c").endswith(":task:1:a:b:c")
