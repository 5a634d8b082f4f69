# ruff: noqa: UP031  (JSON bodies are written out by hand, with % for the parts)
"""Malformed input gets a JSON 4xx (or an `error` frame) and writes nothing: payloads
nested too deep, integers outside 64 bits, lone surrogates, NaN and Infinity, names
with braces, control characters or newlines, cursors that are not ours, and frames
whose fields cannot be written back (a deeply nested `ping.ts` or `reply.data`)."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as aioredis

from delivery.keys import Keyspace
from tests.api.conftest import EdgeFactory, Node


def _nested(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


async def _keys(r: aioredis.Redis, keyspace: Keyspace) -> set[bytes]:
    return {k async for k in r.scan_iter(match=keyspace.pattern())}


async def _post(node: Node, path: str, body: str, role: str = "service") -> Any:
    return await node.http.post(
        path,
        content=body.encode("utf-8", "surrogatepass"),
        headers={
            "Authorization": f"Bearer {node.token('backend', role=role)}",
            "Content-Type": "application/json",
        },
    )


BODIES = {
    "payload nested 300 deep": ('{"user_id": "u1", "payload": %s}' % _nested(300), 422),
    "integer 2^64": ('{"user_id": "u1", "payload": {"n": 18446744073709551616}}', 400),
    "integer below -2^63": ('{"user_id": "u1", "payload": -9223372036854775809}', 400),
    "lone surrogate in payload": ('{"user_id": "u1", "payload": "\\ud800"}', 400),
    "lone surrogate in user id": ('{"user_id": "\\udc00", "payload": 1}', 400),
    "NaN": ('{"user_id": "u1", "payload": NaN}', 400),
    "Infinity": ('{"user_id": "u1", "payload": [Infinity]}', 400),
    "braces in user id": ('{"user_id": "{p1}", "payload": 1}', 422),
    "newline in user id": ('{"user_id": "a\\nb", "payload": 1}', 422),
    "control char in idempotency key": (
        '{"user_id": "u1", "payload": 1, "idempotency_key": "k\\u0007"}',
        422,
    ),
}


@pytest.mark.parametrize("case", list(BODIES))
async def test_bad_messages_are_4xx_and_write_nothing(
    edge: EdgeFactory, r: aioredis.Redis, keyspace: Keyspace, case: str
) -> None:
    node = await edge()
    before = await _keys(r, keyspace)
    body, status = BODIES[case]
    for path, wrapped in (
        ("/v1/messages", body),
        ("/v1/messages/batch", '{"messages": [{"user_id": "u2", "payload": 2}, %s]}' % body),
    ):
        res = await _post(node, path, wrapped)
        assert res.status_code == status, (path, res.status_code, res.text)
        assert set(res.json()["error"]) == {"code", "detail"}
    assert await _keys(r, keyspace) == before


async def test_ints_within_64_bits_and_long_digit_strings_pass(edge: EdgeFactory) -> None:
    node = await edge()
    body = '{"user_id": "u1", "payload": {"n": 18446744073709551615, "s": "%s"}}' % ("9" * 30)
    res = await _post(node, "/v1/messages", body)
    assert res.status_code == 202, res.text
    m = await node.message(res.json()["id"])
    assert m["payload"] == {"n": 18446744073709551615, "s": "9" * 30}


@pytest.mark.parametrize(
    ("task_id", "user_id"),
    [("t{1}", "u1"), ("t%0A1", "u1"), ("t%091", "u1"), ("t" * 200, "u1"), ("t1", "{u}")],
)
async def test_bad_task_fields_are_422(
    edge: EdgeFactory, r: aioredis.Redis, keyspace: Keyspace, task_id: str, user_id: str
) -> None:
    node = await edge()
    before = await _keys(r, keyspace)
    res = await _post(
        node, f"/v1/tasks/{task_id}/status", '{"user_id": "%s", "status": "running"}' % user_id
    )
    assert res.status_code == 422, res.text
    assert await _keys(r, keyspace) == before


@pytest.mark.parametrize("user", ["{p0}", "a\\nb", "\\u0000", "\\ud800"])
async def test_bad_broadcast_users_are_4xx(edge: EdgeFactory, user: str) -> None:
    node = await edge()
    res = await _post(node, "/v1/broadcast", '{"payload": 1, "users": ["%s"]}' % user)
    assert res.status_code in (400, 422), res.text
    res = await _post(node, "/v1/broadcast", '{"payload": %s}' % _nested(300))
    assert res.status_code == 422, res.text


@pytest.mark.parametrize(
    ("path", "cursor"),
    [
        ("/v1/dead-letters", "²-1.0"),
        ("/v1/dead-letters", "1-1.99"),
        ("/v1/dead-letters", "99999999999999999999999-0.0"),
        ("/v1/users/u1/messages", "²."),
        ("/v1/users/u1/messages", "²1.0-abc"),
        ("/v1/users/u1/messages", "99999999999999999999999.0-abc"),
    ],
)
async def test_cursors_that_are_not_ours_are_422(edge: EdgeFactory, path: str, cursor: str) -> None:
    node = await edge()
    res = await node.http.get(
        path,
        params={"cursor": cursor},
        headers={"Authorization": f"Bearer {node.token('ops', role='admin')}"},
    )
    assert res.status_code == 422, res.text
    assert res.json()["error"]["code"] == "invalid_request"


async def test_frames_that_cannot_be_written_back_get_error_frames(edge: EdgeFactory) -> None:
    node = await edge()
    c, _ = await node.online("frames")
    for frame in (
        '{"type": "ping", "ts": %s}' % _nested(300),
        '{"type": "ping", "ts": {"a": 1}}',
        '{"type": "reply", "id": "0-00000000000000000000", "data": %s}' % _nested(300),
        '{"type": "ping", "ts": NaN}',
        '{"type": "ping", "ts": 18446744073709551616}',
    ):
        await c.send(frame)
        error = await c.recv_type("error")
        assert error["code"] in ("invalid_frame", "invalid_json"), error
    await c.send({"type": "ping", "ts": 7})
    assert (await c.recv_type("pong"))["ts"] == 7  # still open
