"""The producers' HTTP API refuses bad input with the right status and a JSON error,
and a refused request writes nothing to Redis; idempotency holds over HTTP."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as aioredis

from delivery.keys import Keyspace
from tests.api.admin_support import bearer, keys
from tests.api.conftest import EdgeFactory, Node
from tests.support import enqueued, moved

MAX_PAYLOAD = 1024


def ok_body(**over: Any) -> dict[str, Any]:
    return {"user_id": "alice", "payload": {"text": "hi"}, **over}


REFUSED: list[tuple[str, dict[str, Any], int, str, str]] = [
    # (case, request kwargs, status, error code, text the detail must contain)
    (
        "invalid JSON",
        {"content": b'{"user_id": "alice", "payload": ', "json_headers": True},
        400,
        "invalid_json",
        "not valid JSON",
    ),
    ("body not an object", {"json": ["alice"]}, 422, "invalid_request", ""),
    ("payload missing", {"json": {"user_id": "alice"}}, 422, "invalid_request", "payload"),
    ("user_id not a string", {"json": ok_body(user_id=42)}, 422, "invalid_request", "user_id"),
    (
        "ttl not a number",
        {"json": ok_body(ttl_seconds="soon")},
        422,
        "invalid_request",
        "ttl_seconds",
    ),
    (
        "negative delay",
        {"json": ok_body(delay_seconds=-1)},
        422,
        "invalid_request",
        "delay_seconds",
    ),
    ("unknown priority", {"json": ok_body(priority="urgent")}, 422, "invalid_request", "priority"),
    ("unknown field", {"json": ok_body(colour="red")}, 422, "invalid_request", "colour"),
    (
        "oversized payload",
        {"json": ok_body(payload={"blob": "x" * (MAX_PAYLOAD + 10)})},
        413,
        "payload_too_large",
        "limit",
    ),
    (
        "empty recipients",
        {"json": {"recipients": [], "payload": 1}},
        422,
        "invalid_request",
        "recipients",
    ),
    (
        "both user_id and recipients",
        {"json": ok_body(recipients=["bob"])},
        422,
        "invalid_request",
        "exactly one",
    ),
    (
        "neither user_id nor recipients",
        {"json": {"payload": 1}},
        422,
        "invalid_request",
        "exactly one",
    ),
    (
        "delay and deliver_at",
        {"json": ok_body(delay_seconds=5, deliver_at="2100-01-01T00:00:00Z")},
        422,
        "invalid_request",
        "at most one",
    ),
    (
        "deliver_at without zone",
        {"json": ok_body(deliver_at="2100-01-01T00:00:00")},
        422,
        "invalid_request",
        "time zone",
    ),
    (
        "delay past ttl",
        {"json": ok_body(delay_seconds=10, ttl_seconds=5)},
        422,
        "invalid_request",
        "shorter than ttl",
    ),
    ("user id with braces", {"json": ok_body(user_id="a{b}")}, 422, "invalid_request", "braces"),
]


@pytest.fixture
async def node(edge: EdgeFactory) -> Node:
    return await edge(max_payload_bytes=MAX_PAYLOAD)


async def post(
    node: Node, path: str, *, role: str | None = "service", json_headers: bool = False, **kw: Any
) -> Any:
    headers = bearer(node, role) if role else {}
    if json_headers:
        headers["content-type"] = "application/json"
    return await node.http.post(path, headers=headers, **kw)


async def test_refused_requests_write_nothing(
    node: Node, r: aioredis.Redis, keyspace: Keyspace
) -> None:
    before = await keys(r, keyspace)
    for case, kw, status, code, text in REFUSED:
        resp = await post(node, "/v1/messages", **kw)
        assert resp.status_code == status, (case, resp.text)
        err = resp.json()["error"]
        assert err["code"] == code, (case, err)
        assert text in err["detail"], (case, err)
        assert await keys(r, keyspace) == before, case


@pytest.mark.parametrize(
    "label",
    [None, "application/x-www-form-urlencoded", "text/plain", "application/octet-stream"],
)
async def test_a_json_body_is_read_whatever_its_content_type(node: Node, label: str | None) -> None:
    """curl -d labels a body as a form; other clients send none at all."""
    headers = bearer(node, "service") | ({"content-type": label} if label else {})
    body = b'{"user_id": "alice", "payload": {"text": "hi"}}'
    ok = await node.http.post("/v1/messages", headers=headers, content=body)
    assert ok.status_code == 202, ok.text
    assert (await node.message(ok.json()["id"]))["payload"] == {"text": "hi"}
    form = await node.http.post("/v1/messages", headers=headers, content=b"user_id=alice")
    assert form.status_code == 400 and form.json()["error"]["code"] == "invalid_json"


async def test_missing_token_and_wrong_role(
    node: Node, r: aioredis.Redis, keyspace: Keyspace
) -> None:
    before = await keys(r, keyspace)
    for path, body in (
        ("/v1/messages", ok_body()),
        ("/v1/messages/batch", {"messages": [ok_body()]}),
    ):
        resp = await post(node, path, role=None, json=body)
        assert resp.status_code == 401 and resp.json()["error"]["code"] == "unauthorized"
        resp = await node.http.post(path, json=body, headers={"Authorization": "Basic abc"})
        assert resp.status_code == 401
        resp = await post(node, path, role="user", json=body)
        assert resp.status_code == 403 and resp.json()["error"]["code"] == "forbidden"
        assert "service" in resp.json()["error"]["detail"]
    assert await keys(r, keyspace) == before
    resp = await post(node, "/v1/messages", role="admin", json=ok_body())  # admin may too
    assert resp.status_code == 202


async def test_batch_with_one_bad_message_names_it_and_writes_nothing(
    node: Node, r: aioredis.Redis, keyspace: Keyspace
) -> None:
    before = await keys(r, keyspace)
    good = ok_body()
    cases = [
        ([good, ok_body(priority="urgent"), good], 422, "messages[1].priority"),
        ([good, good, {"payload": 1}], 422, "messages[2]"),
        ([ok_body(payload={"b": "x" * (MAX_PAYLOAD + 1)}), good], 413, "messages[0]: payload"),
        ([good, ok_body(delay_seconds=9, ttl_seconds=3)], 422, "messages[1]: delay_seconds"),
        ([], 422, "messages"),
    ]
    for messages, status, where in cases:
        resp = await post(node, "/v1/messages/batch", json={"messages": messages})
        assert resp.status_code == status, (where, resp.text)
        assert where in resp.json()["error"]["detail"], resp.text
        assert await keys(r, keyspace) == before, where
    resp = await post(node, "/v1/messages/batch", json={"messages": [good], "extra": 1})
    assert resp.status_code == 422
    assert await keys(r, keyspace) == before


async def test_batch_and_recipients_are_accepted(node: Node) -> None:
    resp = await post(
        node,
        "/v1/messages/batch",
        json={
            "messages": [
                ok_body(),
                {"recipients": ["bob", "carol", "bob"], "payload": 2, "priority": "high"},
            ]
        },
    )
    assert resp.status_code == 202, resp.text
    rows = resp.json()["messages"]
    assert [(m["index"], m["user_id"]) for m in rows] == [(0, "alice"), (1, "bob"), (1, "carol")]
    assert all(m["status"] == "queued" and not m["duplicate"] for m in rows)
    assert len({m["id"] for m in rows}) == 3
    for m in rows:
        assert (await node.message(m["id"]))["user_id"] == m["user_id"]


async def test_an_http_enqueue_is_counted_once(node: Node) -> None:
    before = enqueued()
    one = await post(node, "/v1/messages", json=ok_body(priority="high"))
    many = await post(
        node,
        "/v1/messages/batch",
        json={"messages": [ok_body(), {"recipients": ["bob", "carol"], "payload": 2}]},
    )
    repeat = ok_body(idempotency_key="once")
    await post(node, "/v1/messages", json=repeat)
    again = await post(node, "/v1/messages", json=repeat)
    assert one.status_code == many.status_code == again.status_code == 202
    assert again.json()["duplicate"] is True
    assert moved(before) == {"high": 1, "normal": 4, "low": 0}


async def test_idempotency_over_http(node: Node, r: aioredis.Redis, keyspace: Keyspace) -> None:
    body = ok_body(idempotency_key="order-7-shipped")
    first = await post(node, "/v1/messages", json=body)
    assert first.status_code == 202 and first.json()["duplicate"] is False
    after_first = await keys(r, keyspace)
    second = await post(node, "/v1/messages", json={**body, "payload": {"text": "again"}})
    assert second.status_code == 202
    assert second.json()["id"] == first.json()["id"] and second.json()["duplicate"] is True
    m = await node.message(first.json()["id"])
    assert m["payload"] == {"text": "hi"}
    msgs = [k for k in await keys(r, keyspace) if ":m:" in k]
    assert len(msgs) == 1
    assert {k for k in await keys(r, keyspace) if ":m:" in k or ":idem:" in k} <= after_first
    batch = await post(node, "/v1/messages/batch", json={"messages": [body]})
    assert batch.json()["messages"][0]["id"] == first.json()["id"]
    assert batch.json()["messages"][0]["duplicate"] is True


async def test_a_body_over_the_limit_is_refused_even_when_chunked(
    node: Node, r: aioredis.Redis, keyspace: Keyspace
) -> None:
    from api.app import body_limit

    limit = body_limit(node.rt.settings)
    before = await keys(r, keyspace)
    chunk = b"[" + b" " * (256 * 1024)

    async def chunks() -> Any:  # no Content-Length: the server counts as it reads
        for _ in range(limit // len(chunk) + 2):
            yield chunk

    for content in (chunks(), b" " * (limit + 1)):
        resp = await post(node, "/v1/messages/batch", json_headers=True, content=content)
        assert resp.status_code == 413, resp.text
        assert resp.json()["error"]["code"] == "payload_too_large"
    assert await keys(r, keyspace) == before
