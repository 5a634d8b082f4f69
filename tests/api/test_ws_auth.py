"""Who may connect: tokens by query, header or subprotocol; refusals with 4401/4403;
the `connected` frame; origins; the connection limit."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

import jwt
import pytest

from tests.api.conftest import SECRET, EdgeFactory


async def test_token_in_query_gets_connected_frame(edge: EdgeFactory) -> None:
    node = await edge(heartbeat_interval_seconds=7)
    before = time.time()
    c, hello = await node.online("alice")
    assert hello["type"] == "connected"
    assert hello["user_id"] == "alice"
    assert hello["heartbeat_interval"] == 7
    assert isinstance(hello["connection_id"], str) and len(hello["connection_id"]) >= 8
    server_time = datetime.fromisoformat(hello["server_time"].replace("Z", "+00:00"))
    assert abs(server_time.timestamp() - before) < 5
    assert set(hello) == {"type", "connection_id", "user_id", "heartbeat_interval", "server_time"}
    assert c.subprotocol is None


async def test_token_in_authorization_header(edge: EdgeFactory) -> None:
    node = await edge()
    c = await node.connect(additional_headers={"Authorization": f"Bearer {node.token('bob')}"})
    assert (await c.recv_type("connected"))["user_id"] == "bob"


async def test_token_as_bearer_subprotocol_selects_bearer(edge: EdgeFactory) -> None:
    node = await edge()
    c = await node.connect(subprotocols=["bearer", node.token("carol")])
    assert c.subprotocol == "bearer"
    assert (await c.recv_type("connected"))["user_id"] == "carol"


async def test_path_user_must_be_the_subject(edge: EdgeFactory) -> None:
    node = await edge()
    ok = await node.connect("dave", path="/dave")
    assert (await ok.recv_type("connected"))["user_id"] == "dave"
    refused = await node.connect("dave", path="/erin")
    assert await refused.closed() == 4403


def _tokens() -> dict[str, str | None]:
    now = int(time.time())
    claims = {"sub": "mallory", "exp": now + 3600}
    return {
        "missing": None,
        "expired": jwt.encode({"sub": "mallory", "exp": now - 10}, SECRET, algorithm="HS256"),
        "wrong signature": jwt.encode(claims, "another-secret-of-32-characters!!", "HS256"),
        "alg none": jwt.encode(claims, None, algorithm="none"),
        "malformed": "not.a.jwt",
        "no exp": jwt.encode({"sub": "mallory"}, SECRET, algorithm="HS256"),
    }


@pytest.mark.parametrize("kind", list(_tokens()))
async def test_bad_tokens_close_4401(edge: EdgeFactory, kind: str) -> None:
    node = await edge()
    token = _tokens()[kind]
    c = await node.connect(token=token) if token else await node.connect()
    assert await c.closed() == 4401
    assert not node.hub.conns


async def test_bad_token_as_subprotocol_closes_4401(edge: EdgeFactory) -> None:
    node = await edge()
    c = await node.connect(subprotocols=["bearer", "not.a.jwt"])
    assert await c.closed() == 4401


async def test_origins_not_allowed_close_4403(edge: EdgeFactory) -> None:
    node = await edge(allowed_origins="https://app.example.com, https://admin.example.com/")
    good = await node.connect("frank", origin="https://app.example.com")
    assert (await good.recv_type("connected"))["user_id"] == "frank"
    evil = await node.connect("frank", origin="https://evil.example.com")
    assert await evil.closed() == 4403
    # A client that is not a browser sends no Origin at all: allowed.
    native = await node.connect("frank")
    assert (await native.recv_type("connected"))["user_id"] == "frank"


async def test_max_connections_closes_1013(edge: EdgeFactory) -> None:
    node = await edge(max_connections=2)
    a, _ = await node.online("gina")
    b, _ = await node.online("hank")
    third = await node.connect("ivan")
    assert await third.closed() == 1013
    await a.close()
    for _ in range(100):  # the freed slot is usable again
        if len(node.hub.conns) < 2:
            break
        await asyncio.sleep(0.02)
    _, hello = await node.online("ivan")
    assert hello["user_id"] == "ivan"
    assert b.ws.state.name == "OPEN"
