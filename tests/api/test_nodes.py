"""Several `courier serve` processes on one Redis behave as one service: a message
reaches the node that holds its user's socket, and a node killed with SIGKILL leaves
nothing stuck (its messages come back on the other node, its presence is swept)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import redis.asyncio as aioredis
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from api.auth import issue
from delivery.events import EventType
from delivery.keys import Keyspace
from delivery.producer import Producer, SyncProducer
from delivery.settings import Settings
from tests.api.conftest import SECRET, Client
from tests.processes import Proc, serve_env
from tests.support import raw_timeline

pytestmark = pytest.mark.slow

Cluster = Callable[..., Awaitable[Proc]]


@pytest.fixture
async def serve(
    redis_url: str, keyspace: Keyspace, r: aioredis.Redis, tmp_path: Path
) -> AsyncIterator[Cluster]:
    procs: list[Proc] = []

    async def start(name: str, *args: str, **env: str) -> Proc:
        full = serve_env(name, redis_url, keyspace, tmp_path, **env)
        p = Proc(name, full, tmp_path, *args)
        procs.append(p)
        return p

    yield start
    await asyncio.gather(*(p.stop() for p in procs))
    for t in PINGERS:
        t.cancel()
    PINGERS.clear()


def token(user: str, role: str = "user") -> str:
    return issue(Settings(jwt_secret=SECRET), user, role=role)


async def online(node: Proc, user: str) -> tuple[Client, dict[str, Any]]:
    """A connected client that pings every heartbeat interval, as real clients do."""
    c = Client(await connect(f"{node.ws_url}?token={token(user)}", open_timeout=5))
    hello = await c.recv_type("connected")
    PINGERS.add(asyncio.create_task(_ping(c, hello["heartbeat_interval"])))
    return c, hello


PINGERS: set[asyncio.Task[None]] = set()


async def _ping(c: Client, interval: float) -> None:
    with contextlib.suppress(ConnectionClosed):
        while True:
            await asyncio.sleep(interval)
            await c.send({"type": "ping"})


async def post(node: Proc, user: str, payload: Any) -> str:
    async with httpx.AsyncClient(base_url=node.url, timeout=10) as http:
        res = await http.post(
            "/v1/messages",
            json={"user_id": user, "payload": payload},
            headers={"Authorization": f"Bearer {token('backend', 'service')}"},
        )
    assert res.status_code == 202, res.text
    return res.json()["id"]  # type: ignore[no-any-return]


async def status(r: aioredis.Redis, keyspace: Keyspace, mid: str) -> str:
    return (await r.hget(keyspace.msg(mid), "s") or b"").decode()


async def wait_for(cond: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await cond():
        assert time.monotonic() < deadline, f"{what}: not within {within} s"
        await asyncio.sleep(0.05)


async def collect(c: Client, ids: list[str], within: float = 10) -> None:
    """Receive and ack until every id arrived (redeliveries may come in between)."""
    missing = set(ids)
    deadline = time.monotonic() + within
    while missing:
        frame = await c.recv_type("message", timeout=max(deadline - time.monotonic(), 0.01))
        assert frame["id"] in ids, frame
        missing.discard(frame["id"])
        await c.ack(frame["id"])


async def test_two_nodes_are_one_service(
    serve: Cluster, keyspace: Keyspace, r: aioredis.Redis
) -> None:
    a, b = await serve("a"), await serve("b")
    await asyncio.gather(a.ready(), b.ready())
    on_b, _ = await online(b, "uma")
    on_a, _ = await online(a, "vic")
    # Enqueued on one node for a user on the other, whichever node's consumer reads it.
    to_b = [await post(a, "uma", {"n": i}) for i in range(10)]
    to_a = [await post(b, "vic", {"n": i}) for i in range(10)]
    await asyncio.gather(collect(on_b, to_b), collect(on_a, to_a))
    for mid in to_a + to_b:
        await wait_for(lambda m=mid: _is(r, keyspace, m, "delivered"), 5, "delivered")


async def test_producer_wait_returns_on_delivered_across_two_nodes(
    serve: Cluster, keyspace: Keyspace, r: aioredis.Redis, redis_url: str
) -> None:
    """The backend waits in its own process; the message is enqueued on node a and acked
    by a device on node b: the wait ends with `delivered` (async and blocking)."""
    a, b = await serve("a"), await serve("b")
    await asyncio.gather(a.ready(), b.ready())
    on_b, _ = await online(b, "yara")
    producer = Producer(aioredis.Redis.from_url(redis_url), keyspace=keyspace)
    blocking = SyncProducer(redis.Redis.from_url(redis_url), keyspace=keyspace)
    try:
        mids = [await post(a, "yara", {"n": i}) for i in range(2)]
        waits = [
            asyncio.create_task(producer.wait(mids[0], until="delivered", timeout=15)),
            asyncio.create_task(asyncio.to_thread(blocking.wait, mids[1], timeout=15)),
        ]
        await asyncio.sleep(0.3)
        assert not any(w.done() for w in waits)
        await collect(on_b, mids)
        assert await asyncio.wait_for(asyncio.gather(*waits), 10) == [EventType.DELIVERED] * 2
    finally:
        await producer.aclose()
        blocking.close()


async def test_edge_only_node_gets_what_the_other_node_dispatches(
    serve: Cluster, keyspace: Keyspace, r: aioredis.Redis
) -> None:
    a = await serve("a")
    edge = await serve("edge", "--no-consumers")
    await asyncio.gather(a.ready(), edge.ready())
    c, hello = await online(edge, "wes")
    mid = await post(edge, "wes", {"via": "pubsub"})
    frame = await c.recv_type("message")
    assert frame["id"] == mid and frame["payload"] == {"via": "pubsub"}
    await c.ack(mid)
    await wait_for(lambda: _is(r, keyspace, mid, "delivered"), 5, "delivered")
    events = await raw_timeline(r, keyspace, mid)  # (the first, queued, is implied)
    acked = next(e for e in events if e["e"] == "acked")
    assert (acked["conn"], acked["node"]) == (hello["connection_id"], edge.node_id)


async def test_node_killed_with_sigkill_leaves_nothing_stuck(
    serve: Cluster, keyspace: Keyspace, r: aioredis.Redis
) -> None:
    a, b = await serve("a"), await serve("b")
    await asyncio.gather(a.ready(), b.ready())
    c, hello = await online(a, "xena")
    mid = await post(b, "xena", {"survive": True})
    first = await c.recv_type("message")
    assert (first["id"], first["attempt"]) == (mid, 1)  # received on A, never acked

    await a.stop(signal.SIGKILL)
    assert await c.closed() is None  # no close frame: the node just died
    t0 = time.monotonic()
    back, _ = await online(b, "xena")
    try:
        frame = await back.recv_type("message", timeout=10)
    except TimeoutError:
        raise AssertionError(await story(r, keyspace, mid, b)) from None
    assert frame["id"] == mid and frame["attempt"] >= 2
    assert time.monotonic() - t0 < 10
    await back.ack(mid)
    await wait_for(lambda: _is(r, keyspace, mid, "delivered"), 5, "delivered")

    # The survivor sweeps the dead node's presence.
    part = keyspace.partition_of("xena")

    async def swept() -> bool:
        left = [m.decode() for m in await r.zrange(keyspace.user("xena", "conns"), 0, -1)]
        return (
            not await r.exists(keyspace.node_conns(a.node_id))
            and not await r.exists(keyspace.key(part, "conn", conn=hello["connection_id"]))
            and not any(m.startswith(a.node_id + "|") for m in left)
            and await r.zscore(keyspace.nodes, a.node_id) is None
        )

    await wait_for(swept, 8, "dead node swept")
    assert await r.zscore(keyspace.nodes, b.node_id) is not None
    assert "swept dead node " + a.node_id in b.log_text()


async def story(r: aioredis.Redis, keyspace: Keyspace, mid: str, node: Proc) -> str:
    """A message's stored timeline and a node's log, for a failure message."""
    h = await r.hgetall(keyspace.msg(mid))
    events = [h.get(f"e{i}".encode(), b"").decode() for i in range(1, int(h.get(b"n", 0)) + 1)]
    return f"status {h.get(b's')}; timeline:\n" + "\n".join(events) + "\n" + node.log_text()


async def _is(r: aioredis.Redis, keyspace: Keyspace, mid: str, want: str) -> bool:
    return await status(r, keyspace, mid) == want


async def test_sigterm_closes_1001_and_hands_back_at_once(
    serve: Cluster, keyspace: Keyspace, r: aioredis.Redis
) -> None:
    a = await serve("a", COURIER_ACK_TIMEOUT_SECONDS="60")
    await a.ready()
    c, _ = await online(a, "yara")
    mid = await post(a, "yara", {"before": "shutdown"})
    assert (await c.recv_type("message"))["id"] == mid  # never acked
    t0 = time.monotonic()
    a.proc.send_signal(signal.SIGTERM)
    assert await c.closed() == 1001
    await asyncio.to_thread(a.proc.wait, 15)
    assert a.proc.returncode == 0, a.log_text()
    assert time.monotonic() - t0 < 10
    assert await status(r, keyspace, mid) in ("queued", "parked")  # not waiting 60 s
    assert "code=1001 handed_back=1" in a.log_text()
