from __future__ import annotations

from delivery.queries import Queries
from tests.support import Harness, raw_timeline


async def test_newer_message_cancels_a_parked_one_with_the_same_collapse_key(h: Harness) -> None:
    old = await h.producer.send("alice", {"score": "1-0"}, collapse_key="match-7")
    await h.pump()  # alice offline: parked
    assert await h.status(old.id) == "parked"

    new = await h.producer.send("alice", {"score": "2-0"}, collapse_key="match-7")

    assert await h.status(old.id) == "cancelled"
    last = (await raw_timeline(h.r, h.keyspace, old.id))[-1]
    assert last["e"] == "collapsed" and last["by"] == new.id
    part = h.keyspace.partition_of("alice")
    assert await h.r.zscore(h.keyspace.key(part, "parkx"), old.id) is None
    assert await h.r.zscore(h.keyspace.user("alice", "parked"), old.id) is None
    assert await h.r.get(h.keyspace.user("alice", "collapse", key="match-7")) == new.id.encode()
    await h.pump()
    _, pushes = await h.store.unpark(user_id="alice", node_id="n", conn_id="c", limit=10)
    assert [p.id for p in pushes] == [new.id] and pushes[0].collapse_key == "match-7"
    stats = await Queries(h.r, keyspace=h.keyspace).user_stats("alice")
    assert stats["counts"]["cancelled"] == 1 and stats["counts"]["parked"] == 0


async def test_newer_message_cancels_a_queued_one(h: Harness) -> None:
    await h.connect("alice")
    old = await h.producer.send("alice", {"v": 1}, collapse_key="k")  # not read yet
    new = await h.producer.send("alice", {"v": 2}, collapse_key="k")
    assert await h.status(old.id) == "cancelled"
    await h.pump()
    assert [f["id"] for f in h.devices.frames["alice"]] == [new.id]  # old entry skipped
    assert h.devices.frames["alice"][0]["collapse_key"] == "k"
    assert await h.status(old.id) == "cancelled"
    part = h.keyspace.partition_of("alice")
    stream = h.keyspace.stream(part, "normal")  # the old entry acked and trimmed; the new
    ((entry, fields),) = await h.r.xrange(stream)  # one is the sent message's record
    assert fields[b"m"] == new.id.encode() and fields[b"ck"] == b"k"
    assert await h.r.hget(h.keyspace.msg(new.id), "en") == entry


async def test_newer_message_cancels_a_scheduled_one(h: Harness) -> None:
    old = await h.producer.send("alice", {"v": 1}, collapse_key="k", delay_seconds=60)
    new = await h.producer.send("alice", {"v": 2}, collapse_key="k")
    assert await h.status(old.id) == "cancelled" and new.status == "queued"
    part = h.keyspace.partition_of("alice")
    assert await h.r.zscore(h.keyspace.key(part, "delayed"), old.id) is None


async def test_a_message_already_sent_is_not_collapsed(h: Harness) -> None:
    await h.connect("alice")
    old = await h.producer.send("alice", {"v": 1}, collapse_key="k")
    await h.pump()
    assert await h.status(old.id) == "sent"

    new = await h.producer.send("alice", {"v": 2}, collapse_key="k")

    assert await h.status(old.id) == "sent"
    assert "collapsed" not in [e["e"] for e in await raw_timeline(h.r, h.keyspace, old.id)]
    await h.pump()
    assert [f["id"] for f in h.devices.frames["alice"]] == [old.id, new.id]
    ck = h.keyspace.user("alice", "collapse", key="k")
    assert await h.ack("alice", [old.id]) == {old.id: "ok"}
    assert await h.r.get(ck) == new.id.encode()  # the older one's end leaves the pointer
    assert await h.ack("alice", [new.id]) == {new.id: "ok"}
    # the pointer outlives the newer one's end (until its ttl): an older message with
    # the same key still on its way is dropped at dispatch, never shown after it
    assert await h.r.get(ck) == new.id.encode()
    assert 0 < await h.r.pttl(ck)


async def test_collapse_keys_are_per_user(h: Harness) -> None:
    a = await h.producer.send("alice", {"v": 1}, collapse_key="k")
    await h.producer.send("bob", {"v": 1}, collapse_key="k")
    assert await h.status(a.id) == "queued"


async def test_a_superseded_message_in_flight_is_not_shown_after_the_newer_one(
    h: Harness,
) -> None:
    """Progress P was on its way (sent) when `completed` C came; P's retry must not
    reach the user after C."""
    await h.connect("alice")
    p = await h.producer.send("alice", {"progress": 40}, collapse_key="task:9")
    await h.pump(lambda: _status_is(h, p.id, "sent"))
    c = await h.producer.send("alice", {"status": "completed"}, collapse_key="task:9")
    await h.pump(lambda: _status_is(h, c.id, "sent"))
    await h.ack("alice", [c.id])
    # P's ack never comes: it is retried, and then dropped at dispatch as collapsed
    await h.pump(lambda: _status_is(h, p.id, "cancelled"))
    msg = await h.store.get(p.id)
    assert msg.timeline[-1].event == "collapsed" and msg.timeline[-1].detail["by"] == c.id
    assert h.devices.ids("alice").count(p.id) == 1  # shown once, never after C


async def _status_is(h: Harness, mid: str, status: str) -> bool:
    return await h.status(mid) == status
