"""A full Redis (maxmemory, noeviction) seen from outside: producers get JSON 503 with
Retry-After, connected devices stay connected (pings answered, acks kept and applied
once memory frees), a new device is refused cleanly with 1013, no ASGI exception, the
refusals are counted in /metrics; once memory frees everything flows again."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from delivery.keys import Keyspace
from tests.api.conftest import Node, start_edge
from tests.api.test_metrics import scrape, value
from tests.full_redis import FullRedis, private_redis


@pytest.fixture
def full(tmp_path: Path) -> Iterator[FullRedis]:
    with private_redis(tmp_path) as f:
        yield f


@pytest.fixture
async def node(full: FullRedis, keyspace: Keyspace) -> AsyncIterator[Node]:
    n = await start_edge(full.url, keyspace, ack_timeout_seconds=30, claim_idle_seconds=0.5)
    yield n
    for c in n.clients:
        await c.ws.close()
    await full.free()
    await n.stop()


async def test_a_full_redis_is_a_503_and_devices_stay_connected(
    node: Node, full: FullRedis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    device, _ = await node.online("dana")
    before = await node.send("dana", {"n": 0})
    first = await device.recv_type("message")
    assert first["id"] == before

    await full.fill()
    service = {"Authorization": f"Bearer {node.token('backend', role='service')}"}
    res = await node.http.post(
        "/v1/messages", json={"user_id": "dana", "payload": 1}, headers=service
    )
    assert res.status_code == 503 and res.headers["retry-after"] == "5"
    assert res.json()["error"]["code"] == "redis_full"
    res = await node.http.post(
        "/v1/messages", json={"recipients": ["a", "b", "c", "d"], "payload": 1}, headers=service
    )
    assert res.status_code == 503 and res.json()["error"]["code"] == "redis_full"

    await device.ack(before)  # Redis refuses it now: the edge keeps it
    await device.send({"type": "ping", "ts": 1})
    assert (await device.recv_type("pong"))["ts"] == 1  # still connected
    late = await node.connect("erin")
    assert await late.closed() == 1013
    assert late.ws.close_reason == "Redis is unavailable or full; try again later"
    _, samples = await scrape(node)
    assert value(samples, "courier_redis_refused_writes_total") >= 2
    assert value(samples, "courier_redis_maxmemory_bytes") > 0

    await full.free()
    await node.wait_status(before, "delivered")  # the ack kept while Redis was full
    after = await node.send("dana", {"n": 1})
    assert (await device.recv_type("message"))["id"] == after
    await device.ack(after)
    await node.wait_status(after, "delivered")
    _, hello = await node.online("erin")
    assert hello["user_id"] == "erin"
    assert not [r for r in caplog.records if "Exception in ASGI application" in r.getMessage()]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [
        r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR
    ]
