"""courier_client against a real `courier serve` process: what the app gets, what
the server records, across restarts, refusals, refreshes, topics and replies."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from courier_client import (
    ClientEvent,
    CourierClient,
    Disconnected,
    Forbidden,
    Message,
    Unauthorized,
)
from delivery.producer import Producer
from tests.clients.conftest import Serve

RECORDED = ("connected", "disconnected", "refreshed", "error", "topic", "subscribed", "duplicate")
FAST = {"min_reconnect_delay": 0.05, "max_reconnect_delay": 0.3}


class App:
    """What an app sees of a client: the messages it was handed, and the events."""

    def __init__(self, client: CourierClient, on_message: Callable[[Message], Any] | None = None):
        self.client = client
        self.got: list[Message] = []
        self.events: list[tuple[str, Any]] = []
        for name in RECORDED:
            client.on(name, lambda v, name=name: self.events.append((name, v)))
        self.on_message = on_message
        self.task = asyncio.create_task(self._consume())

    async def _consume(self) -> None:
        async for msg in self.client.messages():
            self.got.append(msg)
            if self.on_message is not None:
                await self.on_message(msg)

    def named(self, name: str) -> list[Any]:
        return [v for n, v in self.events if n == name]

    async def until(self, check: Callable[[], Any], within: float = 10, what: str = "") -> None:
        deadline = time.monotonic() + within
        while not check():
            if self.task.done():
                self.task.result()
            assert time.monotonic() < deadline, f"timed out: {what} ({self.events[-5:]})"
            await asyncio.sleep(0.02)


async def test_a_message_is_handed_over_once_and_acked(serve: Any, producer: Producer) -> None:
    server: Serve = await serve()
    async with CourierClient(server.ws_url, get_token=lambda: server.token("amy"), **FAST) as c:
        app = App(c)
        await c.ready(5)
        mid = (await producer.send("amy", {"text": "hi"}, priority="high")).id
        m = await server.wait_status(mid, "delivered")
        assert [(x.id, x.payload, x.priority, x.attempt) for x in app.got] == [
            (mid, {"text": "hi"}, "high", 1)
        ]
        acked = [e for e in m["timeline"] if e["event"] == "acked"]
        assert len(acked) == 1 and m["attempts"] == 1
    assert c.state == "disconnected"
    await asyncio.wait_for(app.task, 5)  # messages() ends when the client closes


async def test_manual_acks_wait_for_the_app(serve: Any, producer: Producer) -> None:
    server: Serve = await serve()
    client = CourierClient(server.ws_url, get_token=lambda: server.token("ann"), ack="manual")
    async with client:
        app = App(client)
        mid = (await producer.send("ann", {"n": 1})).id
        await app.until(lambda: app.got, what="the message")
        await asyncio.sleep(0.3)
        assert (await server.message(mid))["status"] == "sent"
        app.got[0].ack()
        await server.wait_status(mid, "delivered")


async def test_a_restarted_server_loses_nothing_and_shows_nothing_twice(
    serve: Any, producer: Producer
) -> None:
    server: Serve = await serve()
    # Acks wait 1 s, so the restart cuts in while some are not sent yet: the server
    # hands those messages back and sends them again; the app must not see them twice.
    client = CourierClient(
        server.ws_url, get_token=lambda: server.token("bea"), ack_delay=1.0, **FAST
    )
    async with client:
        app = App(client)
        await client.ready(5)
        before = [
            a[0].id
            for a in await producer.submit_many(
                [{"user_id": "bea", "payload": i} for i in range(5)]
            )
        ]
        await app.until(lambda: len(app.got) == 5, what="the first five")
        await server.stop()  # SIGTERM: 1001, unacked messages handed back
        during = [(await producer.send("bea", {"down": i})).id for i in range(3)]
        await server.start()
        await app.until(lambda: len(app.named("connected")) == 2, what="the reconnect")
        after = [(await producer.send("bea", {"after": i})).id for i in range(3)]
        for mid in before + during + after:
            await server.wait_status(mid, "delivered", within=15)
        await asyncio.sleep(0.5)  # anything sent twice would have arrived by now
    ids = [m.id for m in app.got]
    assert sorted(ids) == sorted(before + during + after)
    assert len(ids) == len(set(ids))
    codes = [d.code for d in app.named("disconnected")]
    assert codes[0] == 1001 and codes[-1] == 1000  # the restart; our own goodbye
    # What came again (handed back unacked) was acked again, not shown again.
    assert {f["id"] for f in app.named("duplicate")} <= set(before)


@pytest.mark.parametrize("fixed", [False, True])
async def test_a_refused_token_is_tried_once_more_then_raised(serve: Any, fixed: bool) -> None:
    server: Serve = await serve()
    calls = []

    def bad_token() -> str:
        calls.append(time.monotonic())
        return server.token_until("cat", time.time() - 60)  # expired

    options: dict[str, Any] = {"token": bad_token()} if fixed else {"get_token": bad_token}
    calls.clear()
    client = CourierClient(server.ws_url, **options, **FAST)
    started = time.monotonic()
    with pytest.raises(Unauthorized) as refused:
        async with client:
            async for _ in client.messages():
                pass
    assert time.monotonic() - started < 5
    assert refused.value.code == 4401 and "expired" in refused.value.reason
    assert client.attempts == (1 if fixed else 2) and len(calls) == (0 if fixed else 2)
    await asyncio.sleep(1.5)  # and then nothing: no loop
    assert client.attempts == (1 if fixed else 2)
    assert "get_token" in str(refused.value)


async def test_a_forbidden_user_is_raised_after_one_fresh_token(serve: Any) -> None:
    server: Serve = await serve()
    client = CourierClient(server.ws_url, user="dan", get_token=lambda: server.token("eve"), **FAST)
    events: list[Disconnected] = []
    client.on("disconnected", events.append)
    with pytest.raises(Forbidden):
        await client.ready(5)
    assert client.attempts == 2
    assert [(d.code, d.reconnect) for d in events] == [(4403, True), (4403, False)]
    await client.close()


async def test_refresh_keeps_the_socket_past_the_first_tokens_exp(
    serve: Any, producer: Producer
) -> None:
    server: Serve = await serve()
    first_exp = int(time.time()) + 3

    def get_token() -> str:  # 3 s tokens: each must be refreshed before it expires
        return server.token_until("fay", max(first_exp, int(time.time()) + 3))

    async with CourierClient(server.ws_url, get_token=get_token, **FAST) as client:
        app = App(client)
        await client.ready(5)
        await asyncio.sleep(max(0.0, first_exp + 3 - time.time()))  # 3 s past the first exp
        assert len(app.named("connected")) == 1 and not app.named("disconnected")
        assert len(app.named("refreshed")) >= 2
        assert app.named("refreshed")[-1] > first_exp
        mid = (await producer.send("fay", {"late": True})).id
        await server.wait_status(mid, "delivered")
        assert [m.id for m in app.got] == [mid]


async def test_without_refresh_the_server_closes_and_the_client_comes_back(
    serve: Any, producer: Producer
) -> None:
    server: Serve = await serve()
    tokens = [server.token_until("gus", int(time.time()) + 2), server.token("gus")]
    client = CourierClient(server.ws_url, get_token=lambda: tokens.pop(0), refresh=False)
    async with client:
        app = App(client)
        await app.until(lambda: len(app.named("connected")) == 2, within=8, what="reconnect")
        (gone,) = app.named("disconnected")
        assert (gone.code, gone.reason, gone.reconnect) == (4401, "token_expired", True)
        mid = (await producer.send("gus", 1)).id
        await server.wait_status(mid, "delivered")


async def test_topics_are_subscribed_again_after_a_reconnect(
    serve: Any, producer: Producer
) -> None:
    server: Serve = await serve()
    await producer.task_status("t1", "hal", "running", progress=10)
    async with CourierClient(server.ws_url, get_token=lambda: server.token("hal"), **FAST) as c:
        app = App(c)
        await c.ready(5)
        await c.subscribe("task:t1")
        await app.until(lambda: app.named("topic"), what="the current state")
        assert app.named("topic")[0]["data"]["progress"] == 10
        await server.restart()
        await app.until(lambda: len(app.named("subscribed")) == 2, what="subscribed again")
        await producer.task_status("t1", "hal", "progress", progress=50)
        await app.until(
            lambda: any(f["data"].get("progress") == 50 for f in app.named("topic")),
            what="the live update after the reconnect",
        )
        assert c.topics == ["task:t1"]
        await c.cancel("t1")
        deadline = time.monotonic() + 5
        while not (await producer.get_task("t1", "hal"))["cancel_requested"]:
            assert time.monotonic() < deadline, "the cancel did not arrive"
            await asyncio.sleep(0.05)


async def test_a_reply_reaches_producer_request(serve: Any, producer: Producer) -> None:
    server: Serve = await serve()

    async def answer(msg: Message) -> None:
        if msg.reply_requested:
            await msg.reply({"answer": "yes", "to": msg.payload["q"]})

    client = CourierClient(
        server.ws_url, get_token=lambda: server.token("ida"), ack="manual", **FAST
    )
    async with client:
        app = App(client, on_message=answer)
        await client.ready(5)
        got = await producer.request("ida", {"q": "proceed?"}, timeout=10)
        assert got == {"answer": "yes", "to": "proceed?"}
        (asked,) = app.got
        m = await server.wait_status(asked.id, "delivered")  # the reply acked it too
        assert any(e["event"] == "replied" for e in m["timeline"]), m["timeline"]


async def test_a_frozen_server_is_noticed_by_the_heartbeat(serve: Any, producer: Producer) -> None:
    server: Serve = await serve(heartbeat_interval_seconds=0.5)
    client = CourierClient(
        server.ws_url,
        get_token=lambda: server.token("jo"),
        pong_timeout=0.5,
        connect_timeout=1,
        **FAST,
    )
    async with client:
        app = App(client)
        await client.ready(5)
        server.freeze()  # SIGSTOP: the socket stays open, nothing answers
        try:
            await app.until(lambda: app.named("disconnected"), within=6, what="no pong noticed")
        finally:
            server.thaw()
        assert (app.named("disconnected")[0].code, app.named("disconnected")[0].reason) == (
            4000,
            "no pong in time",
        )
        await app.until(lambda: len(app.named("connected")) >= 2, within=10, what="back")
        mid = (await producer.send("jo", {"after": "thaw"})).id
        await server.wait_status(mid, "delivered")
        errors = [e for e in app.named("error") if isinstance(e, ClientEvent)]
        assert all(e.kind in ("transport", "server") for e in errors), errors
