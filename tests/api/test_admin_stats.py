"""GET /v1/stats: stream depth, pending entries and lag, the waiting sets, nodes with
their connections and users, consumers alive."""

from __future__ import annotations

import redis.asyncio as aioredis

from delivery.keys import GROUP, Keyspace
from tests.api.admin_support import admin_get, wait_for
from tests.api.conftest import EdgeFactory


async def test_stats_show_connections_waiting_sets_and_consumers(edge: EdgeFactory) -> None:
    node = await edge()
    await node.online("alice", query="device=phone")
    alice2, _ = await node.online("alice", query="device=laptop")
    await node.online("bob")
    parked = await node.send("carol", {"n": 1})
    delayed = await node.send("carol", {"n": 2}, delay_seconds=60)
    inflight = await node.send("bob", {"n": 3})
    await node.wait_status(parked, "parked")
    await node.wait_status(inflight, "sent")
    assert (await node.message(delayed))["status"] == "scheduled"

    s = await admin_get(node, "/v1/stats")
    assert (s["parked"], s["delayed"], s["inflight"], s["dead_letters"]) == (1, 1, 1, 0)
    assert s["connections"] == 3 and s["online_users"] == 2
    (me,) = s["nodes"]
    assert me["node_id"] == node.rt.node_id and me["alive"] is True
    assert (me["connections"], me["users"]) == (3, 2)
    assert s["nodes_alive"] == 1
    assert s["consumers_alive"] >= 1
    assert node.rt.node_id in {c["name"] for c in s["consumers"] if c["alive"]}
    assert set(s["streams"]) == {"high", "normal", "low"}
    assert len(s["partitions"]) == 4
    assert sum(p["parked"] for p in s["partitions"]) == 1
    assert s["time"].endswith("Z")

    await alice2.close()
    s = await wait_for(lambda: _stats_where(node, lambda s: s["connections"] == 2))
    assert s["online_users"] == 2 and s["nodes"][0]["connections"] == 2


async def test_stats_show_depth_pending_and_lag(
    edge: EdgeFactory, r: aioredis.Redis, keyspace: Keyspace
) -> None:
    node = await edge()
    consumers = node.rt.consumers
    assert consumers is not None
    await consumers.stop()  # nothing reads the streams from now on
    ids = [await node.send("dave", {"n": i}) for i in range(3)]
    high = await node.send("dave", {"n": 9}, priority="high")
    s = await admin_get(node, "/v1/stats")
    assert s["streams"]["normal"] == {"length": 3, "pending": 0, "lag": 3}
    assert s["streams"]["high"] == {"length": 1, "pending": 0, "lag": 1}
    assert s["streams"]["low"] == {"length": 0, "pending": 0, "lag": 0}
    part = keyspace.partition_of("dave")
    assert s["partitions"][part]["streams"]["normal"]["length"] == 3

    # A consumer reads one entry and dies before dispatching it: pending 1, lag 2.
    stream = keyspace.stream(part, "normal")
    await r.xreadgroup(GROUP, "stuck", {stream: ">"}, count=1)
    s = await admin_get(node, "/v1/stats")
    assert s["streams"]["normal"] == {"length": 3, "pending": 1, "lag": 2}
    stuck = next(c for c in s["consumers"] if c["name"] == "stuck")
    # it holds an entry, and sends no heartbeat: not counted alive (it "died")
    assert stuck["pending"] == 1 and stuck["alive"] is False and stuck["last_beat"] is None
    for mid in [*ids, high]:
        assert (await node.message(mid))["status"] == "queued"


async def _stats_where(node, pred):  # type: ignore[no-untyped-def]
    s = await admin_get(node, "/v1/stats")
    return s if pred(s) else None
