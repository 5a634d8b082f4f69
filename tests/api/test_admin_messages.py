"""What operators see of real lifecycles: one message's status and timeline, a user's
messages (filters, cursor pagination) and statistics."""

from __future__ import annotations

from datetime import datetime

import redis.asyncio as aioredis

from delivery.keys import Keyspace
from tests.api.admin_support import QUICK, admin_get, bearer, events, kill_message
from tests.api.conftest import EdgeFactory


async def test_delivered_message_shows_status_recipient_ttl_and_timeline(
    edge: EdgeFactory,
) -> None:
    node = await edge()
    c, hello = await node.online("alice")
    mid = await node.send(
        "alice", {"text": "hi"}, priority="high", ttl_seconds=600, reply_requested=True
    )
    frame = await c.recv_type("message")
    await c.send({"type": "reply", "id": mid, "data": {"answer": 42}})
    m = await node.wait_status(mid, "delivered")
    assert m["id"] == mid and m["recipient"] == m["user_id"] == "alice"
    assert m["priority"] == "high" and m["attempts"] == 1 == frame["attempt"]
    assert m["ttl_seconds"] == 600 and m["payload"] == {"text": "hi"}
    assert m["reply"] == {"answer": 42}
    assert m["delivered_at"] is not None and m["delivered_at"] >= m["created_at"]
    assert events(m) == ["queued", "sent", "replied", "acked"]
    sent = m["timeline"][1]
    assert sent["to"] == [f"{node.rt.node_id}|{hello['connection_id']}"]
    assert m["timeline"][3]["conn"] == hello["connection_id"]
    for e in m["timeline"]:
        assert e["at"].endswith("Z") and isinstance(e["attempt"], int)


async def test_unknown_message_is_404(edge: EdgeFactory) -> None:
    node = await edge()
    for mid in ("0-00000000000000000000", "garbage", "99999-abc"):
        r = await node.http.get(f"/v1/messages/{mid}", headers=bearer(node, "admin"))
        assert r.status_code == 404, r.text
        assert r.json()["error"]["code"] == "not_found"


async def test_parked_then_delivered_and_retried_then_dead_timelines(edge: EdgeFactory) -> None:
    node = await edge(**QUICK)
    parked = await node.send("bob", {"n": 1})
    m = await node.wait_status(parked, "parked")
    assert events(m) == ["queued", "parked"]
    assert m["timeline"][1]["until"].endswith("Z")  # epoch ms shown as a time

    c, _ = await node.online("bob")
    frame = await c.recv_type("message")
    assert frame["id"] == parked
    await c.ack(parked)
    m = await node.wait_status(parked, "delivered")
    assert events(m) == ["queued", "parked", "sent", "acked"]
    assert m["timeline"][2]["from"] == "parked"

    dead = await kill_message(node, c, "bob", {"n": 2})
    m = await node.message(dead)
    assert events(m) == ["queued", "sent", "retry", "queued", "sent", "dead"]
    retry = m["timeline"][2]
    assert retry["reason"] == "ack_timeout" and retry["due"].endswith("Z")
    assert m["attempts"] == 2 and m["max_attempts"] == 2
    assert m["last_error"] == "ack_timeout" and m["dead_letter_entry"]


async def test_expired_message(edge: EdgeFactory) -> None:
    node = await edge()
    mid = await node.send("carol", {"n": 1}, ttl_seconds=1)
    m = await node.wait_status(mid, "expired", within=5)
    assert events(m) == ["queued", "parked", "expired"]
    stats = await admin_get(node, "/v1/users/carol/stats")
    assert stats["counts"]["expired"] == 1 and stats["counts"]["parked"] == 0


async def test_user_messages_filters_and_cursor_pagination(
    edge: EdgeFactory, r: aioredis.Redis, keyspace: Keyspace
) -> None:
    node = await edge()
    ids = [await node.send("dave", {"n": i}) for i in range(7)]
    for mid in ids:
        await node.wait_status(mid, "parked")
    c, _ = await node.online("dave")
    first = {f["id"] for f in await c.messages(7)}
    assert first == set(ids)
    await c.ack(ids[0], ids[1])
    for mid in ids[:2]:
        await node.wait_status(mid, "delivered")

    rows: list[dict[str, str]] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = await admin_get(node, "/v1/users/dave/messages", **params)
        assert len(page["messages"]) <= 3
        rows += page["messages"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert pages < 10
    seen = [m["id"] for m in rows]
    assert sorted(seen) == sorted(ids) and len(seen) == 7  # each once
    created = [m["created_at"] for m in rows]
    assert created == sorted(created, reverse=True)  # newest first

    delivered = await admin_get(node, "/v1/users/dave/messages", status="delivered")
    assert {m["id"] for m in delivered["messages"]} == set(ids[:2])
    assert all(m["delivered_at"] for m in delivered["messages"])
    sent = await admin_get(node, "/v1/users/dave/messages", status="sent", limit=2)
    assert len(sent["messages"]) == 2 and sent["next_cursor"] is not None
    rest = await admin_get(
        node, "/v1/users/dave/messages", status="sent", limit=10, cursor=sent["next_cursor"]
    )
    assert {m["id"] for m in sent["messages"] + rest["messages"]} == set(ids[2:])
    assert rest["next_cursor"] is None

    all_rows = (await admin_get(node, "/v1/users/dave/messages", limit=50))["messages"]
    created = sorted({row["created_at"] for row in all_rows})
    since, until = created[0], created[-1]
    inside = await admin_get(node, "/v1/users/dave/messages", since=since, until=until)
    assert len(inside["messages"]) == 7
    late = await admin_get(node, "/v1/users/dave/messages", since=until)
    assert {m["created_at"] for m in late["messages"]} == {until}
    future = datetime.fromisoformat("2100-01-01T00:00:00+00:00").isoformat()
    assert (await admin_get(node, "/v1/users/dave/messages", since=future))["messages"] == []

    for bad in ({"status": "lost"}, {"limit": 0}, {"cursor": "nonsense"}, {"since": "yesterday"}):
        resp = await node.http.get(
            "/v1/users/dave/messages", params=bad, headers=bearer(node, "admin")
        )
        assert resp.status_code == 422, (bad, resp.text)
        assert resp.json()["error"]["code"] == "invalid_request"
    nobody = await admin_get(node, "/v1/users/nobody/messages")
    assert nobody == {"user_id": "nobody", "messages": [], "next_cursor": None}


async def test_user_stats(edge: EdgeFactory) -> None:
    node = await edge(**QUICK)
    c1, hello1 = await node.online("erin", query="device=phone")
    c2, hello2 = await node.online("erin", query="device=laptop")
    ids = [await node.send("erin", {"n": i}) for i in range(3)]
    frames = await c1.messages(3)
    await c2.messages(3)
    await c1.ack(*[f["id"] for f in frames[:2]])
    for mid in ids[:2]:
        await node.wait_status(mid, "delivered")
    s = await admin_get(node, "/v1/users/erin/stats")
    assert s["user_id"] == "erin" and s["total"] == 3
    assert s["counts"]["delivered"] == 2 and s["counts"]["sent"] == 1
    assert sum(s["counts"].values()) == 3
    assert s["delivery_rate"] == round(2 / 3, 4)
    lat = s["ack_latency_ms"]
    assert lat["samples"] == 2 and lat["mean"] is not None and lat["mean"] >= 0
    assert lat["p95"] is not None and lat["p95"] >= lat["mean"] - 1
    assert s["online"]["devices"] == 2
    conns = {d["conn_id"]: d for d in s["online"]["connections"]}
    assert set(conns) == {hello1["connection_id"], hello2["connection_id"]}
    assert conns[hello1["connection_id"]]["device"] == "phone"
    assert conns[hello1["connection_id"]]["node_id"] == node.rt.node_id

    await c2.close()
    await c1.close()
    empty = await admin_get(node, "/v1/users/nobody/stats")
    assert empty["total"] == 0 and empty["delivery_rate"] is None
    assert empty["ack_latency_ms"] == {"mean": None, "p95": None, "samples": 0}
    assert empty["online"] == {"devices": 0, "connections": []}
