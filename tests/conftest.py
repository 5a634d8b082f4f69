"""Shared fixtures: a real Redis for every test, isolated by a key prefix.

Redis comes from COURIER_TEST_REDIS_URL, else 127.0.0.1:6379 if it answers, else a
testcontainers Redis when a Docker engine is reachable, else a private redis-server
started for the session. Every test gets its own key prefix and its keys are deleted
afterwards, so tests never see each other's data.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import AsyncIterator, Iterator

import pytest
import redis
import redis.asyncio as aioredis

from api.redis_server import RedisServer
from delivery import clock
from delivery.keys import Keyspace


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    url = os.environ.get("COURIER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    if _answers(url):
        yield url
        return
    try:
        from testcontainers.redis import RedisContainer

        with RedisContainer("redis:7-alpine") as c:
            yield f"redis://{c.get_container_host_ip()}:{c.get_exposed_port(6379)}/0"
            return
    except Exception:
        pass
    with tempfile.TemporaryDirectory() as d, RedisServer(d) as server:
        yield server.url


@pytest.fixture
def keyspace() -> Keyspace:
    return Keyspace(prefix=f"t{secrets.token_hex(4)}", partitions=4)


@pytest.fixture
async def r(redis_url: str, keyspace: Keyspace) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    async for key in client.scan_iter(match=keyspace.pattern(), count=1000):
        await client.delete(key)
    await client.aclose()


class FrozenClock:
    """``delivery.clock`` stopped: ``wall`` and ``monotonic`` read these numbers until a
    test moves them with :meth:`advance` (the seam the product reads every local clock
    through; Redis server time is not frozen)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, wall: float = 1_767_225_600.0) -> None:
        self.wall = wall  # 2026-01-01T00:00:00Z
        self.monotonic = 1_000.0
        monkeypatch.setattr(clock, "wall", lambda: self.wall)
        monkeypatch.setattr(clock, "monotonic", lambda: self.monotonic)

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.monotonic += seconds


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> FrozenClock:
    return FrozenClock(monkeypatch)
