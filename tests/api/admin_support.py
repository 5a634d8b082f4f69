"""Helpers of the admin, metrics and CLI tests: authorised HTTP calls, waits on a
message's status, the keys of the test's keyspace, and ready-made lifecycles."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import redis.asyncio as aioredis

from delivery.keys import Keyspace
from tests.api.conftest import Client, Node

# Fast retries, two attempts: a message that is never acked dies in about a second.
QUICK = {"ack_timeout_seconds": 0.3, "max_attempts": 2}


def bearer(node: Node, role: str, user: str = "ops") -> dict[str, str]:
    return {"Authorization": f"Bearer {node.token(user, role=role)}"}


async def admin_get(node: Node, path: str, **params: Any) -> Any:
    r = await node.http.get(path, params=params, headers=bearer(node, "admin"))
    assert r.status_code == 200, r.text
    return r.json()


async def admin(node: Node, method: str, path: str, **kw: Any) -> httpx.Response:
    return await node.http.request(method, path, headers=bearer(node, "admin"), **kw)


async def post_message(
    node: Node, body: Any, *, role: str = "service", **kw: Any
) -> httpx.Response:
    return await node.http.post("/v1/messages", json=body, headers=bearer(node, role), **kw)


async def keys(r: aioredis.Redis, keyspace: Keyspace) -> set[str]:
    return {k.decode() async for k in r.scan_iter(match=keyspace.pattern(), count=1000)}


async def wait_for(check: Any, within: float = 10.0) -> Any:
    """Poll an async predicate until it returns something truthy (bounded)."""
    deadline = time.monotonic() + within
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


async def kill_message(node: Node, client: Client, user: str, payload: Any) -> str:
    """A message to an online client that never acks: retried once, then dead
    (the node must run with QUICK settings)."""
    mid = await node.send(user, payload)
    frames = [f for f in await client.messages(2, timeout=10) if f["id"] == mid]
    assert [f["attempt"] for f in frames] == [1, 2]
    await node.wait_status(mid, "dead")
    return mid


def events(message: dict[str, Any]) -> list[str]:
    return [e["event"] for e in message["timeline"]]
