"""In-app first, then mobile push: a message for a user who is offline is not acked within
its ``escalate_after_seconds``; ``undelivered`` fires once (timeline, producer events,
webhook), the example receiver (examples/webhook_receiver.py) sends one push, and the
message still arrives when the app connects. A message acked in time never escalates."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import uvicorn

from delivery.events import EventType
from delivery.producer import Producer
from delivery.webhooks import new_secret
from examples.webhook_receiver import create_app
from tests.api.conftest import EdgeFactory
from tests.servers import listening, port_of, serve
from tests.support import wait_until

SECRET = new_secret()


@pytest.fixture
async def push_receiver() -> AsyncIterator[tuple[str, Any]]:
    """The example receiver on a socket bound first: (its URL, its app)."""
    pushes: list[str] = []

    async def push(user: str, mid: str, event: dict[str, Any]) -> None:
        pushes.append(mid)

    app = create_app(SECRET, push=push)
    sock = listening()
    port = port_of(sock)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
    task = await serve(server, sock)
    yield f"http://127.0.0.1:{port}/courier", app
    server.should_exit = True
    await asyncio.wait_for(task, 10)


async def test_offline_user_gets_one_push_and_the_message_later(
    edge: EdgeFactory, producer: Producer, push_receiver: tuple[str, Any]
) -> None:
    url, app = push_receiver
    hooks = [{"id": "app", "url": url, "secret": SECRET, "events": ["delivered", "undelivered"]}]
    node = await edge(webhooks=orjson.dumps(hooks).decode(), webhook_retry_base_seconds=0.1)
    events = producer.events("backend", types=["undelivered", "delivered"], block_seconds=0.1)
    await events.group.ensure()
    started = time.monotonic()
    mid = await node.send("dana", {"text": "standup in 5"}, escalate_after_seconds=1)
    await node.wait_status(mid, "parked")

    async def pushed() -> bool:
        return app.state.pushed == [("dana", mid)]

    await wait_until(pushed, within=10)
    assert time.monotonic() - started >= 1  # not before its time
    async with events:
        e = await asyncio.wait_for(events.__anext__(), 5)
    assert (e.type, e.message_id, e.data["status"]) == ("undelivered", mid, "parked")
    assert e.data["escalate_after_ms"] == 1000
    m = await node.message(mid)
    assert m["status"] == "parked"  # still deliverable
    assert [x["event"] for x in m["timeline"]] == ["queued", "parked", "undelivered"]

    dana, _ = await node.online("dana")  # the app comes back: the message is still there
    (frame,) = await dana.messages(1)
    assert frame["id"] == mid
    await dana.ack(mid)
    assert await producer.wait(mid, timeout=5) is EventType.DELIVERED

    async def confirmed() -> bool:
        return app.state.delivered == [mid]

    await wait_until(confirmed, within=10)
    await asyncio.sleep(1.2)  # past another escalation delay: nothing fires again
    assert app.state.pushed == [("dana", mid)]
    timeline = [x["event"] for x in (await node.message(mid))["timeline"]]
    assert timeline == ["queued", "parked", "undelivered", "sent", "acked"]


async def test_a_message_acked_in_time_never_escalates(
    edge: EdgeFactory, producer: Producer
) -> None:
    node = await edge(escalate_after_seconds=1)  # the default for every message
    eve, _ = await node.online("eve")
    mid = await node.send("eve", {"text": "hi"})
    (frame,) = await eve.messages(1)
    assert frame["id"] == mid
    await eve.ack(mid)
    await node.wait_status(mid, "delivered")
    await asyncio.sleep(1.5)
    timeline = [x["event"] for x in (await node.message(mid))["timeline"]]
    assert timeline == ["queued", "sent", "acked"]
    ks = node.rt.keyspace
    assert await producer.redis.zcard(ks.key(ks.partition_of("eve"), "escalate")) == 0
