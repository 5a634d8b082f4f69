"""Presence round trips: a connect is one pipelined round trip (the node's list of its
connections and ``connect.lua``), and still works when Redis lost the script."""

from __future__ import annotations

import uuid

from delivery.presence import Conn
from delivery.scripts import source
from tests.support import NODE, Harness


async def test_connect_registers_the_connection_with_its_node(h: Harness) -> None:
    now = await h.presence.connect(Conn("ada", "c1", NODE), device="phone")
    assert now > 0
    assert await h.r.sismember(h.keyspace.node_conns(NODE), "ada|c1")
    assert await h.r.zrange(h.keyspace.user("ada", "conns"), 0, -1) == [f"{NODE}|c1".encode()]
    assert (await h.presence.online("ada")) == [Conn("ada", "c1", NODE)]


async def test_connect_loads_a_script_redis_does_not_know(h: Harness) -> None:
    # What a restarted or flushed Redis answers: NOSCRIPT. A copy of connect.lua with a
    # new sha stands in for it (flushing the shared test Redis would disturb others).
    fresh = source("connect") + f"\n-- {uuid.uuid4()}"
    h.presence.scripts.connect = h.presence.redis.register_script(fresh)
    assert await h.r.script_exists(h.presence.scripts.connect.sha) == [False]
    now = await h.presence.connect(Conn("bo", "c2", NODE), device="laptop")
    assert now > 0
    assert await h.r.sismember(h.keyspace.node_conns(NODE), "bo|c2")
    assert (await h.presence.online("bo")) == [Conn("bo", "c2", NODE)]
