from __future__ import annotations

import pytest

from delivery.keys import GROUP
from delivery.producer import Limits
from delivery.store import Timing
from tests.support import Harness, raw_timeline

READ_TO_PUSH_MS = 5  # a read and the dispatch of what it read, in this test's process


@pytest.fixture
async def fast(r, keyspace) -> Harness:  # type: ignore[no-untyped-def]
    timing = Timing(
        ack_timeout_ms=100,
        heartbeat_timeout_ms=60_000,
        retry_base_seconds=0.05,
        retry_max_seconds=1.0,
        retention_ms=3_600_000,
    )
    return await Harness(r, keyspace, timing, Limits()).start()


async def test_unacked_message_is_retried_at_growing_intervals_then_dead(fast: Harness) -> None:
    h = fast
    await h.connect("alice")  # a device that receives but never acks
    sent = await h.producer.send("alice", {"n": 1}, max_attempts=4)

    await h.pump(lambda: _is(h, sent.id, "dead"), timeout=10)

    # The device saw the same message four times, attempt 1..4.
    frames = h.devices.frames["alice"]
    assert [(f["id"], f["attempt"]) for f in frames] == [(sent.id, a) for a in (1, 2, 3, 4)]

    tl = await raw_timeline(h.r, h.keyspace, sent.id)
    assert [(e["e"], e["a"]) for e in tl] == [
        ("queued", 0),
        ("sent", 1), ("retry", 1), ("queued", 1),
        ("sent", 2), ("retry", 2), ("queued", 2),
        ("sent", 3), ("retry", 3), ("queued", 3),
        ("sent", 4), ("dead", 4),
    ]  # fmt: skip
    sends = [e for e in tl if e["e"] == "sent"]
    retries = [e for e in tl if e["e"] == "retry"]
    delays = [e["due"] - e["t"] for e in retries]
    for attempt, (delay, retry) in enumerate(zip(delays, retries, strict=True), start=1):
        ceiling = min(1.0, 0.05 * 2 ** (attempt - 1)) * 1000  # 50, 100, 200 ms
        assert ceiling / 2 - 1 <= delay <= ceiling, (attempt, delays)  # equal jitter
        assert retry["reason"] == "ack_timeout"
    assert delays == sorted(delays) and delays[0] < delays[-1]
    # retried only after the ack timeout, which runs from the consumer's read of the
    # entry (its in-flight record is that pending entry), a moment before the push
    for s, rt in zip(sends, retries, strict=False):
        assert rt["t"] - s["t"] >= 100 - READ_TO_PUSH_MS
    for rt, s in zip(retries, sends[1:], strict=True):
        assert s["t"] >= rt["due"]  # and sent again no earlier than its due time
    assert tl[-1]["reason"] == "ack_timeout"
    assert tl[-1]["t"] - sends[-1]["t"] >= 100 - READ_TO_PUSH_MS

    msg_key = h.keyspace.msg(sent.id)
    part = h.keyspace.partition_of("alice")
    dlq = await h.r.xrange(h.keyspace.key(part, "dlq"))
    assert len(dlq) == 1
    entry_id, fields = dlq[0]
    assert fields == {
        b"id": sent.id.encode(),
        b"u": b"alice",
        b"reason": b"ack_timeout",
        b"attempts": b"4",
    }
    assert await h.r.hget(msg_key, "le") == b"ack_timeout"
    assert await h.r.hget(msg_key, "dl") == entry_id
    msg = await h.store.get(sent.id)
    assert msg.status == "dead" and msg.attempts == 4 and msg.last_error == "ack_timeout"
    # Nothing is left waiting: no in-flight record, no due time, and it stays dead.
    stream = h.keyspace.stream(part, "normal")
    assert (await h.r.xpending(stream, GROUP))["pending"] == 0
    assert await h.r.zscore(h.keyspace.key(part, "delayed"), sent.id) is None
    assert await h.pump_once() == 0
    assert await h.r.xlen(stream) == 0  # every entry it had was trimmed
    assert await h.status(sent.id) == "dead" and len(h.devices.frames["alice"]) == 4
    totals = await h.r.hgetall(h.keyspace.key(part, "reached"))
    assert totals == {
        b"enqueued": b"1",
        b"queued": b"4",
        b"sent": b"4",
        b"scheduled": b"3",
        b"dead": b"1",
    }


async def test_ack_after_a_retry_delivers_and_stops_retries(fast: Harness) -> None:
    h = fast
    await h.connect("alice")
    sent = await h.producer.send("alice", {"n": 1}, max_attempts=4)
    await h.pump(lambda: _frames(h, "alice", 2), timeout=10)
    assert await h.ack("alice", [sent.id]) == {sent.id: "ok"}
    await h.pump()
    msg = await h.store.get(sent.id)
    assert msg.status == "delivered" and msg.attempts == 2
    assert [e.event for e in msg.timeline][-1] == "acked"
    assert len(h.devices.frames["alice"]) == 2


async def _is(h: Harness, mid: str, status: str) -> bool:
    return await h.status(mid) == status


async def _frames(h: Harness, user: str, n: int) -> bool:
    return len(h.devices.frames[user]) >= n
