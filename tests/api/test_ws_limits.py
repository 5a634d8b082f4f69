"""What one WebSocket may make the edge hold: frames queued for a reader that is stuck
(SEND_QUEUE_BYTES, not only a count of frames), messages pushed and never acked
(MAX_UNACKED), and connections of one user (MAX_CONNECTIONS_PER_USER). Past each
bound the connection is closed or refused, and nothing is lost."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aioredis

from api.auth import issue
from delivery.keys import Keyspace
from delivery.producer import Producer
from delivery.queries import Queries
from delivery.settings import Settings
from tests.api.conftest import EdgeFactory
from tests.api.rawsock import handshake
from tests.processes import SECRET, ServeProc

MB = 1024 * 1024


@pytest.mark.slow
async def test_a_stuck_reader_does_not_make_the_edge_buffer_its_messages(
    proc: ServeProc, r: aioredis.Redis, keyspace: Keyspace
) -> None:
    p = await proc(
        "edge",
        COURIER_ACK_TIMEOUT_SECONDS="30",
        COURIER_HEARTBEAT_INTERVAL_SECONDS="30",
        COURIER_HEARTBEAT_TIMEOUT_SECONDS="60",
    )
    s = handshake(p.port, issue(Settings(jwt_secret=SECRET), "stuck"))  # never reads
    try:
        await asyncio.sleep(0.5)
        before = p.rss()
        producer = Producer(r, keyspace=keyspace)
        queries = Queries(r, keyspace=keyspace)
        blob = "x" * 60_000
        peak = before
        for _ in range(20):  # 1,000 x 60 KB
            await producer.submit_many([{"user_id": "stuck", "payload": blob}] * 50)
            peak = max(peak, p.rss())

        async def counts() -> dict[str, int]:
            got: dict[str, int] = (await queries.user_stats("stuck"))["counts"]
            return got

        async def settled() -> bool:
            now = await counts()
            # (a send the close interrupted may wait its retry first, then park)
            return now["sent"] == 0 and now["queued"] == 0 and now["scheduled"] == 0

        deadline = time.monotonic() + 30
        while not await settled():
            peak = max(peak, p.rss())
            assert time.monotonic() < deadline, await counts()
            await asyncio.sleep(0.05)
    finally:
        s.close()
    grown = peak - before
    assert grown < 30 * MB, f"RSS grew {grown / MB:.0f} MB for one stuck reader"
    final = await counts()
    assert final["parked"] == 1000, final  # all kept for its next connection
    assert "code=1008" in p.log_text()


async def test_a_device_that_never_acks_is_closed_past_max_unacked(edge: EdgeFactory) -> None:
    node = await edge(max_unacked=10, drain_window=5)
    c, _ = await node.online("lazy")
    ids = [await node.send("lazy", {"n": i}) for i in range(12)]
    got = []
    for _ in range(10):
        got.append((await c.recv_type("message"))["id"])
    assert await c.closed() == 1008
    assert c.ws.close_reason == "too many unacknowledged messages: ack what you receive"
    # nothing lost: every message reaches the next connection (on a node with the
    # default cap, so that acking one by one cannot trip it again)
    back, _ = await (await edge()).online("lazy")
    missing = set(ids)
    while missing:
        frame = await back.recv_type("message")
        missing.discard(frame["id"])
        await back.ack(frame["id"])
    for mid in ids:
        await node.wait_status(mid, "delivered")


async def test_a_user_past_max_connections_per_user_is_refused_with_4429(
    edge: EdgeFactory,
) -> None:
    a = await edge(max_connections_per_user=2)
    b = await edge(max_connections_per_user=2)  # the cap holds across edges
    first, _ = await a.online("many")
    await b.online("many")
    third = await a.connect("many")
    assert await third.closed() == 4429
    assert third.ws.close_reason == "too many connections of this user (2)"
    await b.online("someone-else")  # other users are not affected
    await first.close()
    await asyncio.sleep(0.1)
    _, hello = await b.online("many")  # room again once one closed
    assert hello["user_id"] == "many"
