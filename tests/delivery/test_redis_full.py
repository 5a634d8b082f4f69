"""A request of several script calls (recipients in several partitions, a batch over
ENQUEUE_CHUNK) is all or nothing when Redis fills up in the middle of it: every call
first gets its room (delivery/producer.py, ``rooms``), and one refused room refuses
the request with nothing written."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from consumers.resilience import redis_full
from delivery.keys import Keyspace
from delivery.producer import Producer
from tests.full_redis import FullRedis, private_redis


@pytest.fixture
def full(tmp_path: Path) -> Iterator[FullRedis]:
    with private_redis(tmp_path) as f:
        yield f


def _users(keyspace: Keyspace) -> list[str]:
    """One user in each of two partitions."""
    found: dict[int, str] = {}
    i = 0
    while len(found) < 2:
        found.setdefault(keyspace.partition_of(f"u{i}"), f"u{i}")
        i += 1
    return list(found.values())


async def _hashes(r: aioredis.Redis, keyspace: Keyspace) -> int:
    return len([k async for k in r.scan_iter(match=f"{keyspace.prefix}:*:m:*")])


async def test_redis_filling_up_mid_request_writes_nothing(full: FullRedis) -> None:
    r = full.client()
    keyspace = Keyspace("full", 4)
    producer = Producer(r, keyspace=keyspace)
    await producer.send("warm", 1)
    # room for the first call of the request (100 x 8 KB), not for the second
    used = int((await r.info("memory"))["used_memory"])
    await r.config_set("maxmemory", used + 900_000)
    msgs = [{"user_id": u, "payload": "x" * 8000} for u in _users(keyspace) for _ in range(100)]
    with pytest.raises(ResponseError) as e:
        await producer.submit_many(msgs)
    assert redis_full(e.value)
    assert await _hashes(r, keyspace) == 1  # only the warm-up message
    assert not [k async for k in r.scan_iter(match="full:*:reserve:*")]
    await r.config_set("maxmemory", 0)  # memory frees: the same request goes through
    accepted = await producer.submit_many(msgs)
    assert len(accepted) == 200 and await _hashes(r, keyspace) == 201
    assert not [k async for k in r.scan_iter(match="full:*:reserve:*")]
    await r.aclose()
