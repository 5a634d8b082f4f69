from __future__ import annotations

from tests.support import Harness


async def _message_keys(h: Harness) -> list[str]:
    return [k for k in await h.keys() if ":m:" in k]


async def test_same_idempotency_key_returns_the_same_id_and_writes_nothing_new(
    h: Harness,
) -> None:
    first = await h.producer.send("alice", {"v": 1}, idempotency_key="order-42")
    again = await h.producer.send("alice", {"v": 2}, idempotency_key="order-42", priority="high")

    assert first.created is True and first.status == "queued"
    assert again.id == first.id and again.created is False and again.status == "queued"
    part = h.keyspace.partition_of("alice")
    assert await _message_keys(h) == [h.keyspace.msg(first.id)]
    assert await h.r.xlen(h.keyspace.stream(part, "normal")) == 1
    assert await h.r.xlen(h.keyspace.stream(part, "high")) == 0
    idem = h.keyspace.user("alice", "idem", key="order-42")
    assert await h.r.get(idem) == first.id.encode() and await h.r.pttl(idem) > 0
    msg = await h.store.get(first.id)
    assert msg.payload == {"v": 1} and msg.idempotency_key == "order-42"
    assert len(msg.timeline) == 1
    assert await h.r.hgetall(h.keyspace.key(part, "reached")) == {
        b"queued": b"1",
        b"enqueued": b"1",
    }
    assert await h.r.zcard(h.keyspace.user("alice", "user_msgs")) == 1


async def test_a_repeat_after_delivery_reports_the_current_status(h: Harness) -> None:
    await h.connect("alice")
    first = await h.producer.send("alice", {"v": 1}, idempotency_key="k")
    await h.pump()
    await h.ack("alice", [first.id])
    again = await h.producer.send("alice", {"v": 1}, idempotency_key="k")
    assert (again.id, again.status, again.created) == (first.id, "delivered", False)
    await h.pump()
    assert len(h.devices.frames["alice"]) == 1


async def test_idempotency_keys_are_per_user_and_batches_deduplicate_too(h: Harness) -> None:
    a = await h.producer.send("alice", {"v": 1}, idempotency_key="same")
    b = await h.producer.send("bob", {"v": 1}, idempotency_key="same")
    assert a.id != b.id and a.created and b.created
    batch = await h.producer.submit_many(
        [{"user_id": "carol", "payload": i, "idempotency_key": "dup"} for i in range(3)]
    )
    ids = {acc.id for (acc,) in batch}
    assert len(ids) == 1 and [acc.created for (acc,) in batch] == [True, False, False]
    assert len(await _message_keys(h)) == 3


async def test_running_the_same_enqueue_twice_changes_nothing(h: Harness) -> None:
    """A client that re-sends an enqueue whose reply it lost (same id) gets the same
    answer and nothing is written twice."""
    from delivery.enqueue import build

    (call,) = build(
        {"user_id": "alice", "payload": {"n": 1}}, keyspace=h.keyspace, limits=h.producer.limits
    )
    first = await h.producer._scripts.enqueue(keys=[call.prefix], args=call.args())
    await h.connect("alice")
    await h.pump()
    again = await h.producer._scripts.enqueue(keys=[call.prefix], args=call.args())
    mid = first[0].decode()
    assert again == [first[0], b"sent", 0]
    part = h.keyspace.partition_of("alice")
    assert await h.r.xlen(h.keyspace.stream(part, "normal")) == 1  # its in-flight record
    assert await h.r.hgetall(h.keyspace.key(part, "reached")) == {
        b"queued": b"1",
        b"enqueued": b"1",
        b"sent": b"1",
    }
    assert [e.event for e in (await h.store.get(mid)).timeline] == ["queued", "sent"]
