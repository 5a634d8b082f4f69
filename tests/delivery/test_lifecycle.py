from __future__ import annotations

from tests.support import Harness


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


async def _has(h: Harness, user: str) -> bool:
    return bool(h.devices.frames[user])
