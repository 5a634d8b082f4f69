"""The presence members ``node|conn`` and ``user|conn``: built and split by
``delivery/members.py`` (and by ``conn_member`` in the Lua prelude), for user ids that
hold the separator or colons."""

from __future__ import annotations

import pytest

from delivery.exceptions import SettingsError
from delivery.members import (
    check_id,
    conn_member,
    node_member,
    parse_conn_member,
    parse_node_member,
)
from delivery.presence import Conn
from delivery.scripts import assemble
from delivery.settings import Settings
from tests.support import NODE, Harness

USERS = ["alice", "a|b", "|x|", "a:b", "a|b:c|", "ü|ñ", "a||"]


@pytest.mark.parametrize("user", USERS)
def test_node_members_round_trip_any_user_id(user: str) -> None:
    member = node_member(user, "c1")
    assert member == f"{user}|c1"
    assert parse_node_member(member) == (user, "c1")
    assert parse_node_member(member.encode()) == (user, "c1")


def test_conn_members_round_trip() -> None:
    assert conn_member("node-1", "c1") == "node-1|c1"
    assert parse_conn_member(b"node-1|c1") == ("node-1", "c1")
    assert parse_conn_member("n:1|c:2") == ("n:1", "c:2")


@pytest.mark.parametrize("bad", ["", "a|b", "|", "n|"])
def test_ids_with_the_separator_are_refused_where_members_are_built(bad: str) -> None:
    with pytest.raises(ValueError, match=r"without '\|'"):
        check_id(bad, "node id")
    with pytest.raises(ValueError, match="node id"):
        conn_member(bad, "c1")
    with pytest.raises(ValueError, match="connection id"):
        conn_member("n", bad)
    with pytest.raises(ValueError, match="connection id"):
        node_member("alice", bad)


def test_members_without_a_separator_are_refused() -> None:
    with pytest.raises(ValueError, match=r"node\|conn"):
        parse_conn_member(b"nodeonly")
    with pytest.raises(ValueError, match=r"user\|conn"):
        parse_node_member("useronly")


def test_a_node_id_setting_with_the_separator_is_refused() -> None:
    with pytest.raises(SettingsError, match="COURIER_NODE_ID: node_id must be"):
        Settings(node_id="edge|1")
    assert Settings(node_id="edge-1").node_id == "edge-1"


async def test_lua_builds_the_same_member(h: Harness) -> None:
    script = h.r.register_script(assemble("return conn_member(ARGV[1], ARGV[2])"))
    for node, conn in (("n1", "c1"), ("host-7-ab", "0f3a"), ("n:1", "c:2")):
        got = await script(keys=[h.keyspace.part(0)], args=[node, conn])
        assert got.decode() == conn_member(node, conn)


async def test_presence_of_users_whose_ids_hold_the_separator(h: Harness) -> None:
    """connect, online, dispatch targets and the dead-node sweep, for ids with | and :."""
    users = ["a|b", "a|b:c", "a"]
    for i, user in enumerate(users):
        await h.presence.connect(Conn(user, f"c{i}", NODE), device="test")
    assert await h.r.smembers(h.keyspace.node_conns(NODE)) == {
        b"a|b|c0",
        b"a|b:c|c1",
        b"a|c2",
    }
    for i, user in enumerate(users):
        assert await h.presence.online(user) == [Conn(user, f"c{i}", NODE)]
    # a message to one of them is sent to exactly its connection
    h.devices.online.add("a|b")
    sent = await h.producer.send("a|b", {"n": 1})
    await h.pump()
    assert h.devices.ids("a|b") == [sent.id]
    # the node dies: the sweep finds every user from the node's members
    await h.r.zadd(h.keyspace.nodes, {NODE: 0})
    assert await h.presence.sweep_dead_nodes() == [NODE]
    for user in users:
        assert await h.presence.online(user) == []
        assert await h.r.exists(h.keyspace.user(user, "conns")) == 0
    assert await h.r.exists(h.keyspace.node_conns(NODE)) == 0
