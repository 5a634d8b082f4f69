from __future__ import annotations

from datetime import UTC, datetime, timedelta

from delivery.clock import server_ms
from tests.support import Harness, raw_timeline


async def _has(h: Harness, user: str) -> bool:
    return bool(h.devices.frames[user])


async def test_delay_is_honoured_in_server_time(h: Harness) -> None:
    await h.connect("alice")
    sent = await h.producer.send("alice", {"n": 1}, delay_seconds=0.3)
    assert sent.status == "scheduled"
    due = int(
        await h.r.zscore(h.keyspace.key(h.keyspace.partition_of("alice"), "delayed"), sent.id)
    )

    await h.pump()  # nothing is due yet: readers and scheduler find nothing to do
    assert await server_ms(h.r) < due
    assert h.devices.frames["alice"] == []
    assert await h.status(sent.id) == "scheduled"

    await h.pump(lambda: _has(h, "alice"), timeout=5)
    assert [f["id"] for f in h.devices.frames["alice"]] == [sent.id]
    tl = await raw_timeline(h.r, h.keyspace, sent.id)
    assert [e["e"] for e in tl] == ["scheduled", "queued", "sent"]
    assert tl[0]["due"] == due == tl[0]["t"] + 300
    assert tl[1]["from"] == "scheduled"
    assert tl[1]["t"] >= due and tl[2]["t"] >= due  # promoted and sent no earlier than due


async def test_deliver_at_in_the_past_is_delivered_at_once(h: Harness) -> None:
    await h.connect("alice")
    past = datetime.now(UTC) - timedelta(minutes=5)
    sent = await h.producer.send("alice", {"n": 2}, deliver_at=past)
    assert sent.status == "queued"
    await h.pump()
    assert [f["id"] for f in h.devices.frames["alice"]] == [sent.id]
    assert [e["e"] for e in await raw_timeline(h.r, h.keyspace, sent.id)] == ["queued", "sent"]


async def test_deliver_at_in_the_future_waits_for_that_instant(h: Harness) -> None:
    await h.connect("alice")
    at = datetime.fromtimestamp((await server_ms(h.r) + 250) / 1000, UTC)
    sent = await h.producer.send("alice", {"n": 3}, deliver_at=at)
    assert sent.status == "scheduled"
    tl = await raw_timeline(h.r, h.keyspace, sent.id)
    assert tl[0]["due"] == int(at.timestamp() * 1000)
    await h.pump()
    assert h.devices.frames["alice"] == []
    await h.pump(lambda: _has(h, "alice"), timeout=5)
    sent_at = (await raw_timeline(h.r, h.keyspace, sent.id))[-1]["t"]
    assert sent_at >= tl[0]["due"]
