"""Read-only views of ``delivery/queries.py`` over what presence writes."""

from __future__ import annotations

from delivery.presence import Conn
from delivery.queries import Queries
from tests.support import NODE, Harness


async def test_stats_counts_users_whose_ids_hold_a_bar(h: Harness) -> None:
    # Two users that read alike up to their first "|": counted as one before the member
    # helpers (queries split the node's `user|conn` members on the first bar).
    for user, conn in (("a|x", "c1"), ("a|y", "c2"), ("a|y", "c3"), ("b", "c4")):
        await h.presence.connect(Conn(user, conn, NODE), device="test")
    await h.presence.heartbeat_node(NODE)
    stats = await Queries(h.r, keyspace=h.keyspace).stats()
    (node,) = stats["nodes"]
    assert (node["connections"], node["users"]) == (4, 3)
    assert stats["online_users"] == 3


async def test_user_stats_lists_devices_of_a_user_whose_id_holds_a_bar(h: Harness) -> None:
    await h.presence.connect(Conn("x|y:z", "c1", NODE), device="phone")
    online = (await Queries(h.r, keyspace=h.keyspace).user_stats("x|y:z"))["online"]
    assert online["devices"] == 1
    (device,) = online["connections"]
    assert (device["conn_id"], device["node_id"], device["device"]) == ("c1", NODE, "phone")
