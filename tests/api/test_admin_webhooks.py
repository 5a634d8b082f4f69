"""Webhooks and events over the admin API: endpoints added, replaced, shown with their
status and deleted (those of the settings are read-only), bad ones refused with nothing
written, the newest events filtered by user and type; only admins may."""

from __future__ import annotations

import orjson
import redis.asyncio as aioredis

from delivery.keys import Keyspace
from delivery.webhooks import new_secret
from tests.api.admin_support import admin, admin_get, bearer, keys
from tests.api.conftest import EdgeFactory
from tests.receiver import Receiver
from tests.support import wait_until

STATIC = [{"id": "ops", "url": "http://127.0.0.1:9/hook", "secret": new_secret()}]


async def test_endpoints_are_added_shown_replaced_and_deleted(
    edge: EdgeFactory, r: aioredis.Redis, keyspace: Keyspace
) -> None:
    node = await edge(webhooks=orjson.dumps(STATIC).decode())
    made = await admin(node, "PUT", "/v1/webhooks/crm", json={"url": "https://crm.example/h"})
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["secret"].startswith("whsec_")  # made here: shown this once
    assert body["events"] == ["*"] and body["source"] == "api" and body["state"] == "ok"
    assert body["pending"] == 0 and body["delivered"] == 0
    again = await admin(
        node,
        "PUT",
        "/v1/webhooks/crm",
        json={"url": "https://crm.example/v2", "secret": body["secret"], "events": ["delivered"]},
    )
    assert again.status_code == 200 and "secret" not in again.json()
    assert again.json()["events"] == ["delivered"]
    listed = (await admin_get(node, "/v1/webhooks"))["endpoints"]
    assert [(e["id"], e["source"]) for e in listed] == [("ops", "settings"), ("crm", "api")]
    assert all("secret" not in e for e in listed)
    assert (await admin_get(node, "/v1/webhooks/crm"))["url"] == "https://crm.example/v2"

    ro = await admin(node, "DELETE", "/v1/webhooks/ops")
    assert ro.status_code == 409 and "COURIER_WEBHOOKS" in ro.json()["error"]["detail"]
    ro = await admin(node, "PUT", "/v1/webhooks/ops", json={"url": "http://x/y"})
    assert ro.status_code == 409
    gone = await admin(node, "DELETE", "/v1/webhooks/crm")
    assert gone.status_code == 200 and gone.json() == {"id": "crm", "deleted": True}
    missing = await admin(node, "GET", "/v1/webhooks/crm")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert not [k for k in await keys(r, keyspace) if ":webhooks" in k or ":wh:" in k]


async def test_bad_endpoints_are_refused_and_write_nothing(
    edge: EdgeFactory, r: aioredis.Redis, keyspace: Keyspace
) -> None:
    node = await edge()
    for body, says in [
        ({"url": "ftp://x"}, "url: an http:// or https:// URL"),
        ({"url": "http://x/y", "secret": "hunter2"}, "secret: must start with whsec_"),
        ({"url": "http://x/y", "events": ["seen"]}, "events.0: Input should be"),
        ({"url": "http://x/y", "timeout_seconds": 0}, "timeout_seconds"),
        ({"url": "http://x/y", "colour": "red"}, "colour"),
    ]:
        res = await admin(node, "PUT", "/v1/webhooks/crm", json=body)
        assert res.status_code == 422, (body, res.text)
        assert res.json()["error"]["code"] == "invalid_request"
        assert says in res.json()["error"]["detail"], res.json()
    res = await admin(node, "PUT", "/v1/webhooks/bad id!", json={"url": "http://x/y"})
    assert res.status_code == 422 and "id:" in res.json()["error"]["detail"]
    assert not [k for k in await keys(r, keyspace) if ":webhooks" in k]
    user = await node.http.get("/v1/webhooks", headers=bearer(node, "service"))
    assert user.status_code == 403


async def test_an_endpoint_added_at_runtime_gets_events_and_shows_its_dead_letters(
    edge: EdgeFactory,
) -> None:
    receiver = await Receiver().start()
    try:
        node = await edge(webhook_max_attempts=2, webhook_retry_base_seconds=0.05)
        receiver.mode["hook"] = "fail"
        res = await admin(node, "PUT", "/v1/webhooks/hook", json={"url": receiver.endpoint("hook")})
        assert res.status_code == 201
        await wait_until(lambda: _has_sender(node, "hook"), within=5)
        mid = await node.send("nobody", {"n": 1})  # parked: one event

        async def dead() -> bool:
            return (await admin_get(node, "/v1/webhooks/hook"))["dead_letters"] == 1

        await wait_until(dead, within=10)
        (letter,) = (await admin_get(node, "/v1/webhooks/hook/dead-letters"))["dead_letters"]
        assert letter["type"] == "parked" and letter["event"]["data"]["message_id"] == mid
        assert letter["attempts"] == 2 and letter["error"] == "HTTP 503"
        receiver.mode["hook"] = "ok"
        replayed = await admin(node, "POST", "/v1/webhooks/hook/dead-letters/replay")
        assert replayed.status_code == 202 and replayed.json()["replayed"] == 1

        async def arrived() -> bool:
            return receiver.ids("hook") == {letter["event_id"]}

        await wait_until(arrived, within=10)
        status = await admin_get(node, "/v1/webhooks/hook")
        assert status["state"] == "ok" and status["dead_letters"] == 0 and status["delivered"] == 1
        empty = await admin(node, "DELETE", "/v1/webhooks/hook/dead-letters")
        assert empty.json()["purged"] == 0
    finally:
        await receiver.stop()


async def _has_sender(node: object, eid: str) -> bool:
    consumers = node.rt.consumers  # type: ignore[attr-defined]
    return consumers is not None and eid in consumers.webhooks.senders


async def test_recent_events_filtered_by_user_and_type(edge: EdgeFactory) -> None:
    node = await edge()
    c, _ = await node.online("ann")
    mine = await node.send("ann", {"n": 1})
    await c.recv_type("message")
    await c.ack(mine)
    await node.wait_status(mine, "delivered")
    other = await node.send("ben", {"n": 2})
    await node.wait_status(other, "parked")
    everything = (await admin_get(node, "/v1/events"))["events"]
    assert [(e["type"], e["data"]["message_id"]) for e in everything] == [
        ("parked", other),
        ("delivered", mine),
    ]
    anns = (await admin_get(node, "/v1/events", user_id="ann"))["events"]
    assert [e["data"]["message_id"] for e in anns] == [mine]
    parked = (await admin_get(node, "/v1/events", type="parked"))["events"]
    assert [e["data"]["user_id"] for e in parked] == ["ben"]
    page = await admin_get(node, "/v1/events", limit=1)
    assert page["next_before"] == everything[0]["id"]
    rest = await admin_get(node, "/v1/events", before=page["next_before"])
    assert [e["id"] for e in rest["events"]] == [everything[1]["id"]]
    bad = await admin(node, "GET", "/v1/events", params={"type": "seen"})
    assert bad.status_code == 422
    bad = await admin(node, "GET", "/v1/events", params={"before": "yesterday"})
    assert bad.status_code == 422 and bad.json()["error"]["detail"].startswith("before:")


async def test_the_live_tail_streams_a_users_events_as_they_happen(edge: EdgeFactory) -> None:
    node = await edge()
    headers = {**bearer(node, "admin"), "Accept": "text/event-stream"}
    params = {"user_id": "tia", "event": ["parked", "delivered"]}
    async with node.http.stream("GET", "/v1/events/tail", params=params, headers=headers) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        await node.send("tom", {"n": 0})  # another user: not shown
        mid = await node.send("tia", {"n": 1})  # offline: parked
        block: list[str] = []
        async for line in r.aiter_lines():
            if line.startswith(":"):
                continue
            if not line and block:
                break
            if line:
                block.append(line)
    fields = dict(x.split(": ", 1) for x in block)
    data = orjson.loads(fields["data"])
    assert fields["event"] == "parked" and (data["id"], data["user_id"]) == (mid, "tia")
    assert data["event"] == "parked" and data["at"].endswith("Z") and "parked_until" in data
    assert fields["id"].count(":") == 1  # the event id: a reconnect resumes from it
