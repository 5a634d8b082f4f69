from __future__ import annotations

from delivery.clock import server_ms
from delivery.keys import GROUP
from tests.support import Harness, raw_timeline, wait_until


async def _past(h: Harness, mid: str) -> bool:
    return await server_ms(h.r) >= int(await h.r.hget(h.keyspace.msg(mid), "ea"))


async def test_parked_message_expires_via_scheduler_and_is_never_sent(h: Harness) -> None:
    sent = await h.producer.send("alice", {"n": 1}, ttl_seconds=1)  # alice is offline
    await h.pump()
    assert await h.status(sent.id) == "parked"
    part = h.keyspace.partition_of("alice")
    expires = int(await h.r.hget(h.keyspace.msg(sent.id), "ea"))
    assert int(await h.r.zscore(h.keyspace.key(part, "parkx"), sent.id)) == expires

    await wait_until(lambda: _past(h, sent.id), within=5)
    done = await h.scheduler.tick()  # the scheduler's expire_parked step
    assert done["expired"] == 1

    assert await h.status(sent.id) == "expired"
    assert [e["e"] for e in await raw_timeline(h.r, h.keyspace, sent.id)] == [
        "queued",
        "parked",
        "expired",
    ]
    assert await h.r.zscore(h.keyspace.key(part, "parkx"), sent.id) is None
    assert await h.r.exists(h.keyspace.user("alice", "parked")) == 0
    # The user comes online: nothing to hand over, nothing sent.
    await h.connect("alice")
    assert await h.store.unpark(user_id="alice", node_id="n", conn_id="c1", limit=10) == (0, [])
    await h.pump()
    assert h.devices.frames["alice"] == []
    assert await h.ack("alice", [sent.id]) == {sent.id: "final"}
    assert await h.status(sent.id) == "expired"


async def test_queued_message_past_its_ttl_expires_at_dispatch(h: Harness) -> None:
    await h.connect("alice")
    sent = await h.producer.send("alice", {"n": 1}, ttl_seconds=1)  # no worker runs yet
    await wait_until(lambda: _past(h, sent.id), within=5)

    await h.pump()

    assert h.devices.frames["alice"] == []
    assert await h.status(sent.id) == "expired"
    assert [e["e"] for e in await raw_timeline(h.r, h.keyspace, sent.id)] == ["queued", "expired"]
    part = h.keyspace.partition_of("alice")
    stream = h.keyspace.stream(part, "normal")
    assert await h.r.xlen(stream) == 0 and (await h.r.xpending(stream, GROUP))["pending"] == 0
    retention = h.store.timing.retention_ms
    assert 0 < await h.r.pttl(h.keyspace.msg(sent.id)) <= retention
