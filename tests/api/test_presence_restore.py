"""Presence lost while a socket stays open (a Redis outage longer than the heartbeat
timeout): messages parked meanwhile reach the open socket once presence is back."""

from __future__ import annotations


async def test_parked_while_presence_was_lost_is_drained_on_refresh(edge, r, keyspace) -> None:
    node = await edge()
    client, hello = await node.online("dora")
    await r.delete(keyspace.user("dora", "conns"))  # what an outage's pruning leaves
    mid = await node.send("dora", {"text": "sent while presence was gone"})
    await node.wait_status(mid, "parked")

    await node.node.refresh()  # the node's periodic refresh restores presence

    (frame,) = await client.messages(1)
    assert frame["id"] == mid
    await client.ack(mid)
    await node.wait_status(mid, "delivered")
    members = await r.zrange(keyspace.user("dora", "conns"), 0, -1)
    assert [m.decode().split("|")[1] for m in members] == [hello["connection_id"]]


async def test_a_ping_that_restores_presence_drains_what_was_parked(edge, r, keyspace) -> None:
    node = await edge()
    client, _ = await node.online("emil")
    await r.delete(keyspace.user("emil", "conns"))
    mid = await node.send("emil", {"text": "sent while presence was gone"})
    await node.wait_status(mid, "parked")

    await client.send({"type": "ping", "ts": 1})  # refreshes presence before the pong

    assert (await client.recv_type("pong"))["ts"] == 1
    (frame,) = await client.messages(1)
    assert frame["id"] == mid
