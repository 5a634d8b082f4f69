"""Shared fixtures: a real Redis for every test, isolated by a key prefix.

Redis is COURIER_TEST_REDIS_URL when set (it must answer), else a private
redis-server started for the session (never a Redis that happens to answer on 6379).
Every test gets its own key prefix and its keys are deleted afterwards; at the end of
the session the suite checks that it left no key behind in that Redis (keys that were
there before it started are not its own and stay untouched).

Commands the tests run find their data folder in COURIER_DATA_DIR, set here to a
folder of the session: no test touches the user's own (~/.local/share/courier).
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

_session_data = tempfile.mkdtemp(prefix="courier-test-data-")
os.environ["COURIER_DATA_DIR"] = _session_data
for _name in ("COURIER_REDIS_URL", "REDIS_URL"):  # the tests name their Redis themselves
    os.environ.pop(_name, None)


def _keys(url: str) -> set[bytes]:
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=10)
    try:
        return set(client.scan_iter(count=1000))
    finally:
        client.close()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    url = os.environ.get("COURIER_TEST_REDIS_URL")
    if url:
        before = _keys(url)  # raises at once when it does not answer
        yield url
        _no_leftovers(url, before)
        return
    with tempfile.TemporaryDirectory() as d, RedisServer(d) as server:
        yield server.url
        _no_leftovers(server.url, set())


def _no_leftovers(url: str, before: set[bytes]) -> None:
    left = sorted(_keys(url) - before)
    if left:
        sample = ", ".join(k.decode(errors="replace") for k in left[:10])
        raise AssertionError(f"the tests left {len(left)} keys in {url}: {sample}")


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
