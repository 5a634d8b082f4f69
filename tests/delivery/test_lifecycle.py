from __future__ import annotations

from datetime import UTC, datetime, timedelta

from delivery.clock import server_ms
from delivery.queries import Queries
from tests.support import NODE, Harness, raw_timeline


async def test_online_user_gets_message_and_ack_marks_delivered(h: Harness) -> None:
    await h.connect("alice")
    sent = await h.producer.send("alice", {"text": "your export is ready"})
    assert sent.status == "queued"
    await h.pump(lambda: _has(h, "alice"))
    frame = h.devices.frames["alice"][0]
    assert frame["type"] == "message" and frame["id"] == sent.id
    assert frame["payload"] == {"text": "your export is ready"}
    assert frame["attempt"] == 1 and frame["priority"] == "normal"
    assert await h.status(sent.id) == "sent"
    assert await h.ack("alice", [sent.id]) == {sent.id: "ok"}
    msg = await h.store.get(sent.id)
    assert msg.status == "delivered"
    assert [e.event for e in msg.timeline] == ["queued", "sent", "acked"]
    assert msg.timeline[2].detail == {"conn": "c1", "node": "test-node"}


async def test_timeline_events_carry_time_attempt_and_connection(h: Harness) -> None:
    before = await server_ms(h.r)
    await h.connect("alice", conn="phone")
    sent = await h.producer.send("alice", {"n": 1})
    await h.pump(lambda: _has(h, "alice"))
    assert await h.ack("alice", [sent.id], conn="phone") == {sent.id: "ok"}
    after = await server_ms(h.r)

    raw = await raw_timeline(h.r, h.keyspace, sent.id)
    assert [(e["e"], e["a"]) for e in raw] == [("queued", 0), ("sent", 1), ("acked", 1)]
    times = [e["t"] for e in raw]
    assert before <= times[0] <= times[1] <= times[2] <= after  # server ms, in order
    assert raw[1]["to"] == [f"{NODE}|phone"]  # which node and connection it was pushed to
    assert raw[2]["conn"] == "phone" and raw[2]["node"] == NODE

    msg = await h.store.get(sent.id)
    assert msg.attempts == 1 and msg.last_error is None
    assert [e.attempt for e in msg.timeline] == [0, 1, 1]
    now = datetime.now(UTC)
    for e in msg.timeline:
        assert now - timedelta(seconds=30) < e.at <= now + timedelta(seconds=30)
    body = msg.to_json()
    assert [e["event"] for e in body["timeline"]] == ["queued", "sent", "acked"]
    assert body["timeline"][2]["conn"] == "phone" and body["timeline"][2]["node"] == NODE
    assert all(e["at"].endswith("Z") for e in body["timeline"])
    assert body["status"] == "delivered" and body["attempts"] == 1
    stats = await Queries(h.r, keyspace=h.keyspace).user_stats("alice")
    assert stats["counts"]["delivered"] == 1 and stats["ack_latency_ms"]["samples"] == 1
    created_ms = int(await h.r.hget(h.keyspace.msg(sent.id), "ca"))
    assert created_ms == times[0]
    assert stats["ack_latency_ms"]["mean"] == times[2] - created_ms  # enqueue-to-ack


async def test_time_to_ack_counts_from_when_a_message_was_due(h: Harness) -> None:
    """A delay a producer asked for is no time the user took: a message due in 0.6 s
    and acked at once after it came counts from its due time, not its creation."""
    await h.connect("alice")
    later = await h.producer.send("alice", {"n": 1}, delay_seconds=0.6)
    now = await h.producer.send("alice", {"n": 2})
    await h.pump(lambda: _got(h, "alice", now.id))
    assert await h.ack("alice", [now.id]) == {now.id: "ok"}
    await h.pump(lambda: _got(h, "alice", later.id))
    assert await h.ack("alice", [later.id]) == {later.id: "ok"}
    rows = {}
    for mid in (now.id, later.id):
        raw = await raw_timeline(h.r, h.keyspace, mid)
        created = int(await h.r.hget(h.keyspace.msg(mid), "ca"))
        due = raw[0].get("due", created)
        rows[mid] = (due - created, raw[-1]["t"] - due)
    assert rows[later.id][0] >= 600 and rows[now.id][0] == 0
    stats = await Queries(h.r, keyspace=h.keyspace).user_stats("alice")
    assert stats["ack_latency_ms"]["samples"] == 2
    assert stats["ack_latency_ms"]["mean"] == (rows[now.id][1] + rows[later.id][1]) / 2
    assert stats["ack_latency_ms"]["mean"] < 600, "the delay is not counted"


async def _got(h: Harness, user: str, mid: str) -> bool:
    return any(f["id"] == mid for f in h.devices.frames[user])


async def _has(h: Harness, user: str) -> bool:
    return bool(h.devices.frames[user])
