"""Messages for users with no device online are parked and flow to the first device
that connects: highest priority first, oldest first, in windows the client's acks open."""

from __future__ import annotations

import asyncio
import time

import redis.asyncio as aioredis

from delivery.keys import Keyspace
from tests.api.conftest import EdgeFactory
from tests.support import wait_until


async def test_parked_messages_arrive_on_connect_by_priority_then_age(
    edge: EdgeFactory, keyspace: Keyspace, r: aioredis.Redis
) -> None:
    node = await edge()
    plan = ["low", "normal", "high", "normal", "high", "low"]
    ids = []
    for prio in plan:
        mid = await node.send("mia", {"p": prio}, priority=prio)
        await node.wait_status(mid, "parked")
        ids.append(mid)
    assert await r.zcard(keyspace.user("mia", "parked")) == len(plan)

    c, _ = await node.online("mia")
    frames = await c.messages(len(plan))
    expected = [ids[i] for i in (2, 4, 1, 3, 0, 5)]
    assert [f["id"] for f in frames] == expected
    assert all(f["attempt"] == 1 for f in frames)
    await c.ack(*expected)
    for mid in ids:
        m = await node.wait_status(mid, "delivered")
        events = [e["event"] for e in m["timeline"]]
        assert events[-3:] == ["parked", "sent", "acked"], events
    assert not await r.exists(keyspace.user("mia", "parked"))


async def test_parked_message_expires_with_its_own_ttl(edge: EdgeFactory) -> None:
    node = await edge()
    mid = await node.send("noah", {"short": True}, ttl_seconds=1)
    await node.wait_status(mid, "parked")
    await node.wait_status(mid, "expired", within=5)
    c, _ = await node.online("noah")
    await c.silent(0.3)


async def test_large_backlog_drains_in_windows_and_all_are_acked(
    edge: EdgeFactory, keyspace: Keyspace, r: aioredis.Redis
) -> None:
    window, total = 100, 2000
    node = await edge(drain_window=window, send_queue_size=1000)
    producer = node.rt.producer
    accepted = await producer.submit_many(
        [{"user_id": "olga", "payload": {"n": i}} for i in range(total)]
    )
    ids = [a[0].id for a in accepted]
    parked = keyspace.user("olga", "parked")
    deadline = time.monotonic() + 20
    while await r.zcard(parked) < total:
        assert time.monotonic() < deadline, "backlog not parked in time"
        await asyncio.sleep(0.02)

    c, _ = await node.online("olga")
    # Flow control: a client that does not ack gets exactly one window, then nothing.
    first = await c.messages(window)
    await c.silent(0.4)
    assert await r.zcard(parked) == total - window
    # Another user is not held up by the backlog.
    other, _ = await node.online("pete")
    t0 = time.monotonic()
    mid = await node.send("pete", {"quick": True})
    assert (await other.recv_type("message"))["id"] == mid
    assert time.monotonic() - t0 < 2

    seen = [f["id"] for f in first]
    created = [f["created_at"] for f in first]
    await c.ack(*seen)
    outstanding = 0
    batch: list[str] = []
    t0 = time.monotonic()
    while len(seen) < total:
        f = await c.recv_type("message", timeout=10)
        seen.append(f["id"])
        created.append(f["created_at"])
        batch.append(f["id"])
        outstanding = max(outstanding, len(batch))
        if len(batch) >= 50 or len(seen) == total:
            await c.ack(*batch)
            batch = []
    drain_s = time.monotonic() - t0
    assert outstanding <= window
    assert len(set(seen)) == total and set(seen) == set(ids)
    # Oldest first (to the millisecond: ties within one are in id order).
    assert created == sorted(created)
    pipe = r.pipeline(transaction=False)
    for mid in ids:
        pipe.hget(keyspace.msg(mid), "s")
    statuses = await pipe.execute()
    deadline = time.monotonic() + 10
    while any(s != b"delivered" for s in statuses):
        assert time.monotonic() < deadline, "not all delivered"
        pipe = r.pipeline(transaction=False)
        for mid in ids:
            pipe.hget(keyspace.msg(mid), "s")
        statuses = await pipe.execute()
    assert not await r.exists(parked)
    assert drain_s < 30


async def test_a_window_larger_than_the_outbox_never_closes_the_connection(
    edge: EdgeFactory, keyspace: Keyspace, r: aioredis.Redis
) -> None:
    # The drain fills at most half of the outbox at once, whatever the window: a
    # connection that reads and acks is never taken for a slow reader (1008).
    node = await edge(drain_window=1000, send_queue_size=40)
    total = 300
    accepted = await node.rt.producer.submit_many(
        [{"user_id": "quinn", "payload": {"n": i}} for i in range(total)]
    )
    parked = keyspace.user("quinn", "parked")
    deadline = time.monotonic() + 20
    while await r.zcard(parked) < total:
        assert time.monotonic() < deadline, "backlog not parked in time"
        await asyncio.sleep(0.02)

    c, _ = await node.online("quinn")
    seen: list[str] = []
    while len(seen) < total:
        f = await c.recv_type("message", timeout=10)
        seen.append(f["id"])
        if len(seen) % 50 == 0:
            await c.ack(*seen[-50:])
    assert set(seen) == {a[0].id for a in accepted}
    await c.send({"type": "ping", "ts": 7})
    assert (await c.recv_type("pong"))["ts"] == 7  # still open


async def test_drains_asked_for_at_once_keep_one_window(
    edge: EdgeFactory, keyspace: Keyspace, r: aioredis.Redis
) -> None:
    """A connection's presence restored, its node resubscribed ... each asks for a drain;
    however many are asked for while one runs, the window still bounds what is unacked."""
    node = await edge(drain_window=100)
    await node.rt.producer.submit_many(
        [{"user_id": "zoe", "payload": {"i": i}} for i in range(300)]
    )
    parked = keyspace.user("zoe", "parked")

    async def all_parked() -> bool:
        return await r.zcard(parked) == 300

    await wait_until(all_parked)
    c = await node.connect("zoe")
    (conn,) = node.hub.by_user["zoe"]
    for _ in range(3):  # as the node does when presence comes back
        node.node.drain_again(conn)

    got = [f["id"] for f in await c.messages(100)]
    await c.silent(0.5)  # no client ack: nothing beyond the window
    assert len(set(got)) == 100
    assert await r.zcard(parked) == 200
    await c.ack(*got)
    more = [f["id"] for f in await c.messages(100)]  # the acks open the window again
    assert not set(more) & set(got)
