"""A push that reached no node forgets the connections of dead nodes only: a live node
that missed the frame (resubscribing after an outage) keeps its connections."""

from __future__ import annotations

from delivery.presence import Conn
from tests.support import Harness


async def test_evict_forgets_only_connections_of_dead_nodes(h: Harness) -> None:
    ks = h.keyspace
    await h.presence.connect(Conn("alice", "c-live", "live-node"))
    await h.presence.connect(Conn("alice", "c-dead", "dead-node"))
    await h.presence.heartbeat_node("live-node")  # dead-node never beats

    forgotten = await h.store.evict("alice", [("live-node", "c-live"), ("dead-node", "c-dead")])

    assert forgotten == 1
    members = {m.decode() for m in await h.r.zrange(ks.user("alice", "conns"), 0, -1)}
    assert members == {"live-node|c-live"}
