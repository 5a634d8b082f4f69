"""Operators' actions of api/routes_admin_ops.py on real edges: disconnect closes a
user's sockets on every node with 4409 (real WebSocket clients see it) and hands their
unacked messages back; a user's live connections; a test message; replay of every dead
letter; every process's totals and Redis health; each action logged with who did it;
everything admin-only with the error envelope."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest
import redis.asyncio as aioredis

from api.protocol import CloseCode
from delivery.keys import Keyspace
from delivery.presence import Conn
from delivery.producer import Producer
from delivery.totals import NAMES, Totals
from tests.api.admin_support import QUICK, admin, admin_get, bearer, kill_message, wait_for
from tests.api.conftest import EdgeFactory


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def audit_lines() -> Iterator[list[str]]:
    """The lines of the ``courier.audit`` logger (api/audit.py) during the test."""
    logger = logging.getLogger("courier.audit")
    handler, level = Lines(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler.lines
    logger.removeHandler(handler)
    logger.setLevel(level)


async def test_disconnect_closes_the_users_sockets_on_every_node_with_4409(
    edge: EdgeFactory, audit_lines: list[str]
) -> None:
    a = await edge()
    b = await edge()
    on_a, _ = await a.online("dora", query="device=phone")
    on_b, _ = await b.online("dora", query="device=laptop")
    bystander, _ = await b.online("eve")
    mid = await a.send("dora", {"text": "unacked"})
    await on_a.recv_type("message")
    await on_b.recv_type("message")

    r = await admin(a, "POST", "/v1/users/dora/disconnect")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["user_id"] == "dora" and body["connections"] == 2
    assert body["nodes"] == {a.rt.node_id: 1, b.rt.node_id: 1}
    assert body["unreachable_nodes"] == []
    assert await on_a.closed() == CloseCode.DISCONNECTED == 4409
    assert await on_b.closed() == 4409
    # the goodbye of the last one handed the unacked message back: parked, not lost
    await a.wait_status(mid, "parked")
    await bystander.send({"type": "ping"})
    assert (await bystander.recv_type("pong"))["type"] == "pong", "others keep their socket"
    assert await wait_for(lambda: _no_connections(a, "dora")), "presence forgot them"
    assert audit_lines[-1] == "admin ops: disconnect dora (connections=2)"


async def _no_connections(node: object, user: str) -> bool:
    body = await admin_get(node, f"/v1/users/{user}/connections")  # type: ignore[arg-type]
    return body["connections"] == []


async def test_disconnect_one_connection_and_nobody(edge: EdgeFactory) -> None:
    node = await edge()
    first, hello = await node.online("finn")
    second, _ = await node.online("finn")
    conn = hello["connection_id"]
    r = await admin(node, "POST", "/v1/users/finn/disconnect", json={"conn_id": conn})
    assert r.json()["connections"] == 1
    assert await first.closed() == 4409
    await second.send({"type": "ping"})
    assert (await second.recv_type("pong"))["type"] == "pong"
    nobody = await admin(node, "POST", "/v1/users/nobody/disconnect")
    assert nobody.status_code == 200 and nobody.json()["connections"] == 0
    bad = await admin(node, "POST", "/v1/users/finn/disconnect", json={"conn": conn})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_request"


async def test_a_node_that_does_not_hear_is_named(
    edge: EdgeFactory, r: aioredis.Redis, keyspace: Keyspace
) -> None:
    node = await edge()
    # presence of a connection on a node that is gone (no subscriber on its channel)
    await node.rt.presence.connect(Conn("gail", "c1", "ghost-node"))
    body = (await admin(node, "POST", "/v1/users/gail/disconnect")).json()
    assert body["unreachable_nodes"] == ["ghost-node"]
    assert body["connections"] == 0 and body["nodes"] == {"ghost-node": 1}


async def test_connections_show_device_address_node_and_times(edge: EdgeFactory) -> None:
    node = await edge()
    _, hello = await node.online("hana", query="device=pixel-8")
    body = await admin_get(node, "/v1/users/hana/connections")
    (c,) = body["connections"]
    assert c["conn_id"] == hello["connection_id"] and c["node_id"] == node.rt.node_id
    assert c["device"] == "pixel-8" and c["address"].startswith("127.0.0.1:")
    assert c["connected_at"] and c["last_seen"]
    assert (await admin_get(node, "/v1/users/nobody/connections"))["connections"] == []


async def test_a_test_message_arrives_and_names_who_sent_it(
    edge: EdgeFactory, audit_lines: list[str]
) -> None:
    node = await edge()
    client, _ = await node.online("ivy")
    r = await admin(node, "POST", "/v1/users/ivy/test-message", json={"priority": "high"})
    assert r.status_code == 202, r.text
    mid = r.json()["id"]
    frame = await client.recv_type("message")
    assert frame["id"] == mid and frame["priority"] == "high"
    assert frame["payload"]["type"] == "courier.test" and frame["payload"]["from"] == "ops"
    assert audit_lines[-1] == f"admin ops: test message ivy (id={mid})"
    too_long = await admin(node, "POST", "/v1/users/ivy/test-message", json={"text": "x" * 1001})
    assert too_long.status_code == 422


async def test_replay_all_dead_letters(edge: EdgeFactory, audit_lines: list[str]) -> None:
    node = await edge(**QUICK)
    client, _ = await node.online("jack")
    dead = [await kill_message(node, client, "jack", {"n": i}) for i in range(2)]
    r = await admin(node, "POST", "/v1/dead-letters/replay")
    assert r.status_code == 202 and r.json() == {"replayed": 2}
    got = {f["id"] for f in await client.messages(2)}
    assert got == set(dead)
    await client.ack(*dead)
    for mid in dead:
        await node.wait_status(mid, "delivered")
    assert (await admin(node, "POST", "/v1/dead-letters/replay")).json() == {"replayed": 0}
    assert "admin ops: replay all dead letters (replayed=2)" in audit_lines


async def test_replay_and_purge_are_logged_with_who(
    edge: EdgeFactory, audit_lines: list[str]
) -> None:
    node = await edge(**QUICK)
    client, _ = await node.online("kim")
    first = await kill_message(node, client, "kim", {"n": 1})
    second = await kill_message(node, client, "kim", {"n": 2})
    assert (await admin(node, "POST", f"/v1/dead-letters/{first}/replay")).status_code == 202
    assert (await admin(node, "DELETE", f"/v1/dead-letters/{second}")).status_code == 200
    assert (await admin(node, "DELETE", "/v1/dead-letters")).status_code == 200
    assert audit_lines[-3:] == [
        f"admin ops: replay {first}",
        f"admin ops: purge {second} (entries=1)",
        "admin ops: purge all dead letters (purged=0)",
    ]


async def test_totals_count_what_each_process_did(edge: EdgeFactory) -> None:
    node = await edge()
    reader = Totals(node.rt.redis, keyspace=node.rt.keyspace, process="reader")
    before = await admin_get(node, "/v1/stats/totals")
    (row,) = [p for p in before["processes"] if p["process"] == node.rt.node_id]
    client, _ = await node.online("lena")
    mid = await node.send("lena", {"n": 1})
    await client.ack((await client.recv_type("message"))["id"])
    await node.wait_status(mid, "delivered")
    await node.send("offline-lena", {"n": 2})
    await node.rt.consumers.totals.publish()  # type: ignore[union-attr]

    async def moved() -> dict[str, int] | None:
        after = await reader.read()
        (now,) = [p for p in after["processes"] if p["process"] == node.rt.node_id]
        return now if now["parked"] - row["parked"] >= 1 else None

    now = await wait_for(moved)
    # counters are process-wide (the test process may run others): at least this much
    assert now["enqueued"] - row["enqueued"] >= 2 and now["delivered"] - row["delivered"] >= 1
    assert now["at"] > row["at"]
    assert set(before["sum"]) == set(NAMES)


async def test_enqueued_counts_every_producer_of_the_deployment(edge: EdgeFactory) -> None:
    """A backend's own Producer runs no Courier loop: its messages count in the
    reading's deployment-wide `enqueued` (and /v1/stats's), summed over partitions."""
    node = await edge()
    before = await admin_get(node, "/v1/stats/totals")
    keyspace = node.rt.keyspace
    producer = Producer(node.rt.redis, keyspace=keyspace)
    users = [f"elsewhere-{i}" for i in range(6)]
    assert len({keyspace.partition_of(u) for u in users}) > 1, "spread over partitions"
    for u in users:
        await producer.send(u, {"from": "a backend"})
    await node.send("lena", {"from": "the API"})
    after = await admin_get(node, "/v1/stats/totals")
    assert after["enqueued"] - before["enqueued"] == 7
    stats = await admin_get(node, "/v1/stats")
    assert stats["enqueued"] == after["enqueued"] and "enqueued" not in stats["reached"]


async def test_a_stopped_process_leaves_no_totals(
    edge: EdgeFactory, r: aioredis.Redis, keyspace: Keyspace
) -> None:
    node = await edge()
    await wait_for(lambda: r.hexists(keyspace.totals, node.rt.node_id))
    await node.stop()
    assert not await r.hexists(keyspace.totals, node.rt.node_id)


async def test_redis_health(edge: EdgeFactory) -> None:
    node = await edge()
    body = await admin_get(node, "/v1/stats/redis")
    assert body["ping_ms"] >= 0 and body["redis_version"].count(".") == 2
    assert body["role"] == "master" and "used_memory" in body


async def test_the_live_tail_says_events_are_not_enabled(edge: EdgeFactory) -> None:
    node = await edge(events=False)
    r = await admin(node, "GET", "/v1/events/tail", params={"user_id": "a", "event": "dead"})
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "events_disabled"
    bad = await admin(node, "GET", "/v1/events/tail", params={"event": "exploded"})
    assert bad.status_code == 422 and "unknown event 'exploded'" in bad.json()["error"]["detail"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/users/u/disconnect"),
        ("GET", "/v1/users/u/connections"),
        ("POST", "/v1/users/u/test-message"),
        ("GET", "/v1/users/u/tasks"),
        ("POST", "/v1/dead-letters/replay"),
        ("GET", "/v1/stats/totals"),
        ("GET", "/v1/stats/redis"),
        ("GET", "/v1/events/tail"),
    ],
)
async def test_admin_only(edge: EdgeFactory, method: str, path: str) -> None:
    node = await edge()
    none = await node.http.request(method, path)
    assert none.status_code == 401 and none.json()["error"]["code"] == "unauthorized"
    for role in ("user", "service"):
        r = await node.http.request(method, path, headers=bearer(node, role, user="u"))
        assert r.status_code == 403, (role, r.text)
        assert r.json()["error"]["code"] == "forbidden"


async def test_a_users_tasks_running_and_ended(edge: EdgeFactory) -> None:
    node = await edge()
    service = bearer(node, "service")
    for task, status in (("render-1", "running"), ("export-2", "completed")):
        r = await node.http.post(
            f"/v1/tasks/{task}/status", json={"user_id": "max", "status": status}, headers=service
        )
        assert r.status_code == 202, r.text
    body = await admin_get(node, "/v1/users/max/tasks")
    assert {t["task_id"]: t["status"] for t in body["tasks"]} == {
        "render-1": "running",
        "export-2": "completed",
    }
    assert (await admin_get(node, "/v1/users/nobody/tasks"))["tasks"] == []


async def test_disconnect_of_a_node_in_the_same_process_is_immediate(edge: EdgeFactory) -> None:
    node = await edge()
    client, _ = await node.online("nina")
    await admin(node, "POST", "/v1/users/nina/disconnect")
    assert await asyncio.wait_for(client.closed(), 2) == 4409
