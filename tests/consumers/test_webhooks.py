"""The webhook dispatcher against a real HTTP receiver (uvicorn on a loopback port): every
event reaches the endpoints that want it, signed as Standard Webhooks says (verified
with the ``standardwebhooks`` package), once per event id after dedupe, through a
receiver that was down for a while; a slow receiver holds only its own slots; attempts
used up go to the dead letters, and a replay delivers them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import pytest
import redis.asyncio as aioredis
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from consumers.webhooks import GROUP as WEBHOOK_GROUP
from consumers.webhooks import WebhookConfig, WebhookDispatcher
from delivery.events import LifecycleEvent
from delivery.keys import Keyspace
from delivery.producer import Limits
from delivery.store import Timing
from delivery.webhook_store import WebhookStore
from delivery.webhooks import Endpoint, new_secret
from tests.receiver import Receiver
from tests.support import Harness, wait_until

FAST = WebhookConfig(
    timeout_seconds=1,
    max_in_flight=4,
    max_attempts=30,
    retry_base_seconds=0.1,
    retry_max_seconds=0.4,
    block_ms=100,
    claim_idle_ms=1000,
    refresh_seconds=0.2,
    idle_seconds=0.1,
)

Start = Callable[..., Awaitable[WebhookDispatcher]]


@pytest.fixture
async def h(r: aioredis.Redis, keyspace: Keyspace) -> Harness:
    timing = Timing(ack_timeout_ms=300, retry_base_seconds=0.05, retry_max_seconds=0.2)
    return await Harness(r, keyspace, timing, Limits()).start()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rc = await Receiver().start()
    yield rc
    await rc.stop()


@pytest.fixture
async def dispatcher(r: aioredis.Redis, keyspace: Keyspace) -> AsyncIterator[Start]:
    started: list[WebhookDispatcher] = []

    async def start(
        endpoints: Sequence[Endpoint], config: WebhookConfig = FAST
    ) -> WebhookDispatcher:
        store = WebhookStore(r, keyspace=keyspace, static=endpoints)
        d = WebhookDispatcher(
            r, keyspace=keyspace, store=store, consumer=f"wh{len(started)}", config=config
        )
        await d.start()
        started.append(d)
        return d

    yield start
    for d in started:
        await d.stop()


def endpoint(rc: Receiver, path: str, **kw: Any) -> Endpoint:
    return Endpoint(id=path, url=rc.endpoint(path), secret=new_secret(), source="settings", **kw)


async def stream_events(r: aioredis.Redis, keyspace: Keyspace) -> list[LifecycleEvent]:
    out = []
    for p in range(keyspace.partitions):
        out += [LifecycleEvent.from_entry(p, i, f) for i, f in await r.xrange(keyspace.events(p))]
    return out


async def test_every_event_arrives_signed_once_per_id_through_an_outage(
    h: Harness, receiver: Receiver, dispatcher: Start
) -> None:
    crm = endpoint(receiver, "crm")
    d = await dispatcher([crm])
    await receiver.stop()  # down: connections refused
    await h.connect("alice")
    sent = [await h.producer.send("alice", {"n": i}) for i in range(5)]
    asked = await h.producer.send("alice", {"q": "ok?"}, reply_requested=True)
    await h.producer.send("bob", {"n": 1}, collapse_key="k")
    await h.producer.send("bob", {"n": 2}, collapse_key="k")  # cancels the first
    await h.pump()
    await h.ack("alice", [m.id for m in sent])
    await h.store.reply(user_id="alice", conn_id="c1", message_id=asked.id, data=b'"yes"')
    expected = await stream_events(h.r, h.keyspace)
    assert len(expected) == 5 + 2 + 1 + 1  # delivered x5, replied + delivered, cancelled, parked

    async def failing() -> bool:
        return (await d.store.status(crm))["failed"] >= 3

    await wait_until(failing, within=10)
    assert receiver.requests == []
    await asyncio.sleep(1)  # down for a while: retries back off
    await receiver.start()  # up again, same port

    async def all_there() -> bool:
        return receiver.ids("crm") == {e.id for e in expected}

    await wait_until(all_there, within=15)
    hook = Webhook(crm.secret)
    by_id = {e.id: e for e in expected}
    for req in receiver.answered:
        payload = hook.verify(req.body, req.headers)  # raises on a bad signature
        assert payload == by_id[req.webhook_id].to_json()
        assert req.headers["content-type"] == "application/json"
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(receiver.answered[0].body, receiver.answered[0].headers)
    tampered = receiver.answered[0].body.replace(b'"attempt":', b'"attempt": ')
    assert tampered != receiver.answered[0].body
    with pytest.raises(WebhookVerificationError):
        hook.verify(tampered, receiver.answered[0].headers)

    async def settled() -> bool:
        s = await d.store.status(crm)
        return s["pending"] == 0 and s["delivered"] >= len(expected)

    await wait_until(settled, within=5)
    status = await d.store.status(crm)
    assert status["state"] == "ok" and status["dead_letters"] == 0
    assert status["last_result"] == "HTTP 204" and status["last_error"].startswith("ConnectError")
    # nothing waits in Redis for the endpoint any more
    for p in range(h.keyspace.partitions):
        assert await h.r.zcard(h.keyspace.key(p, "wh_due", endpoint="crm")) == 0
        assert await h.r.hlen(h.keyspace.key(p, "wh_jobs", endpoint="crm")) == 0
        assert (await h.r.xpending(h.keyspace.events(p), "webhooks"))["pending"] == 0


async def test_event_types_filter_and_two_dispatchers_share_the_work(
    h: Harness, receiver: Receiver, dispatcher: Start
) -> None:
    eps = [endpoint(receiver, "all"), endpoint(receiver, "misses", events=("undelivered",))]
    eps.append(endpoint(receiver, "parks", events=("parked", "expired")))
    await dispatcher(eps)
    await dispatcher(eps)  # a second process: each event still once per endpoint
    await h.connect("alice")
    ms = [await h.producer.send(u, {"i": i}) for i, u in enumerate(["alice", "bob"] * 20)]
    await h.pump()
    await h.ack("alice", [m.id for m in ms[::2]])
    expected = await stream_events(h.r, h.keyspace)

    async def arrived() -> bool:
        return len(receiver.ids("all")) == 40 and len(receiver.ids("parks")) == 20

    await wait_until(arrived, within=15)
    assert receiver.ids("all") == {e.id for e in expected}
    assert receiver.ids("parks") == {e.id for e in expected if e.type == "parked"}
    assert receiver.ids("misses") == set()
    await asyncio.sleep(0.3)
    assert len([r for r in receiver.requests if r.path == "all"]) == 40  # no duplicates


async def events_acked(h: Harness) -> bool:
    """Every event was read by the webhook group and acked."""
    for p in range(h.keyspace.partitions):
        if await h.r.xlen(h.keyspace.events(p)):
            info = await h.r.xinfo_groups(h.keyspace.events(p))
            mine = [g for g in info if g["name"] == WEBHOOK_GROUP.encode()]
            if not mine or mine[0]["pending"] or mine[0]["lag"]:
                return False
    return True


async def test_with_no_endpoint_the_events_are_passed_unread(
    h: Harness, dispatcher: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed: list[object] = []
    original = LifecycleEvent.from_entry.__func__  # type: ignore[attr-defined]

    def counting(cls: type[LifecycleEvent], *args: Any) -> LifecycleEvent:
        parsed.append(args[1])
        return original(cls, *args)  # type: ignore[no-any-return]

    monkeypatch.setattr(LifecycleEvent, "from_entry", classmethod(counting))
    d = await dispatcher([])
    await h.connect("alice")
    ms = [await h.producer.send("alice", {"i": i}) for i in range(5)]
    await h.pump()
    await h.ack("alice", [m.id for m in ms])
    await wait_until(lambda: events_acked(h), within=15)
    assert parsed == []  # the group moved past them: none read, none parsed
    assert d.senders == {} and len(await stream_events(h.r, h.keyspace)) >= 5


async def test_events_no_endpoint_wants_are_acked_without_a_job(
    h: Harness, receiver: Receiver, dispatcher: Start
) -> None:
    await dispatcher([endpoint(receiver, "parks", events=("parked",))])
    await h.connect("alice")
    ms = [await h.producer.send(u, {"i": i}) for i, u in enumerate(["alice", "bob"] * 3)]
    await h.pump()
    await h.ack("alice", [m.id for m in ms[::2]])
    expected = await stream_events(h.r, h.keyspace)
    parked = {e.id for e in expected if e.type == "parked"}
    assert len(parked) == 3 and len(expected) > 3

    async def acked() -> bool:
        return await events_acked(h) and len(receiver.ids("parks")) == 3

    await wait_until(acked, within=15)
    assert receiver.ids("parks") == parked
    await asyncio.sleep(0.3)
    assert len([r for r in receiver.requests if r.path == "parks"]) == 3  # nothing else


async def test_a_slow_receiver_holds_only_its_own_slots(
    h: Harness, receiver: Receiver, dispatcher: Start
) -> None:
    receiver.mode["slow"] = "hang"
    slow = endpoint(receiver, "slow", timeout_seconds=0.5, max_in_flight=2)
    await dispatcher([slow, endpoint(receiver, "fast")])
    await h.connect("alice")
    ms = [await h.producer.send("alice", {"i": i}) for i in range(30)]
    started = time.monotonic()
    await h.pump()  # message delivery goes on meanwhile
    await h.ack("alice", [m.id for m in ms])
    assert {await h.status(m.id) for m in ms} == {"delivered"}

    async def fast_done() -> bool:
        return len(receiver.ids("fast")) == 30

    await wait_until(fast_done, within=5)
    assert time.monotonic() - started < 5
    assert receiver.peak["slow"] <= 2  # its cap, however many events wait
    assert receiver.ids("slow") == set()


async def test_used_up_attempts_are_dead_lettered_then_replayed(
    h: Harness, receiver: Receiver, dispatcher: Start
) -> None:
    receiver.mode["flaky"] = "fail"
    flaky = endpoint(receiver, "flaky")
    d = await dispatcher([flaky], WebhookConfig(**{**FAST.__dict__, "max_attempts": 3}))
    await h.connect("alice")
    m = await h.producer.send("alice", {"n": 1})
    await h.pump()
    await h.ack("alice", [m.id])

    async def dead() -> bool:
        return (await d.store.status(flaky))["dead_letters"] == 1

    await wait_until(dead, within=10)
    assert len(receiver.requests) == 3 and len({r.webhook_id for r in receiver.requests}) == 1
    (letter,) = await d.store.dead_letters("flaky")
    assert letter["attempts"] == 3 and letter["error"] == "HTTP 503"
    assert letter["type"] == "delivered"
    status = await d.store.status(flaky)
    assert status["state"] == "failing" and status["pending"] == 0 and status["dead"] == 1
    receiver.mode["flaky"] = "ok"
    assert await d.store.replay("flaky") == 1

    async def delivered() -> bool:
        return receiver.ids("flaky") == {letter["event_id"]}

    await wait_until(delivered, within=5)
    assert await d.store.dead_letters("flaky") == []
    assert (await d.store.status(flaky))["dead_letters"] == 0
