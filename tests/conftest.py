"""Shared fixtures: a real Redis for every test, isolated by a key prefix.

Redis is COURIER_TEST_REDIS_URL when set (it must answer), else a private
redis-server started for the session (never a Redis that happens to answer on 6379).
Every test gets its own key prefix and its keys are deleted afterwards; at the end of
the session the suite checks that it left no key behind in that Redis (keys that were
there before it started are not its own and stay untouched).

A failing test cannot spoil the ones after it: a ``SystemExit`` that leaves a task (uvicorn's
answer to a port it cannot bind) is turned into an ordinary error before asyncio lets it
out of the event loop, where pytest would let it skip the rest of the teardown (the
``keyspace``, ``r`` and event-loop fixtures would then stay cached: every later test on
the first one's keys, in its loop, next to its edges). A process a test started and left
running after its teardown is killed (and named in a warning).

Commands the tests run find their data folder in COURIER_DATA_DIR, set here to a
folder of the session: no test touches the user's own (~/.local/share/courier).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
import warnings
from collections.abc import AsyncIterator, Coroutine, Generator, Iterator
from contextvars import Context
from typing import Any

import psutil
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


class _Contained(Coroutine[Any, Any, Any]):
    """A task's coroutine whose SystemExit comes out as RuntimeError. A proxy rather than
    a wrapping ``async def``: a task cancelled before its first step still starts (and
    ends) the coroutine itself, so no "coroutine was never awaited"."""

    def __init__(self, coro: Coroutine[Any, Any, Any]) -> None:
        self.coro = coro
        self.__qualname__ = getattr(coro, "__qualname__", type(coro).__qualname__)

    def send(self, value: Any) -> Any:
        try:
            return self.coro.send(value)
        except SystemExit as e:
            raise RuntimeError(f"SystemExit({e.code}) in a task") from e

    def throw(self, *exc: Any) -> Any:
        try:
            return self.coro.throw(*exc)
        except SystemExit as e:
            raise RuntimeError(f"SystemExit({e.code}) in a task") from e

    def close(self) -> None:
        self.coro.close()

    def __await__(self) -> Generator[Any, None, Any]:
        return self.coro.__await__()

    def __getattr__(self, name: str) -> Any:  # cr_frame, cr_code, ... for task reprs
        return getattr(self.coro, name)


def _contained_task(
    loop: asyncio.AbstractEventLoop,
    coro: Coroutine[Any, Any, Any],
    context: Context | None = None,
) -> asyncio.Task[Any]:
    return asyncio.Task(_Contained(coro), loop=loop, context=context)


class _ContainedPolicy(asyncio.DefaultEventLoopPolicy):
    """Event loops (pytest-asyncio's too) whose tasks cannot raise SystemExit out of them."""

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        loop = super().new_event_loop()
        loop.set_task_factory(_contained_task)  # type: ignore[arg-type]
        return loop


asyncio.set_event_loop_policy(_ContainedPolicy())


def _children() -> dict[int, psutil.Process]:
    return {p.pid: p for p in psutil.Process().children(recursive=True)}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None]:
    item.stash[_BEFORE_CALL] = set(_children())  # after the setup: not the fixtures' own
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None]:
    try:
        return (yield)
    finally:
        before = item.stash.get(_BEFORE_CALL, None)
        if before is not None:
            _kill_leftovers(item, before)


def _kill_leftovers(item: pytest.Item, before: set[int]) -> None:
    """Kill what the test body started and its teardown left running."""
    left = [p for pid, p in _children().items() if pid not in before]
    for p in left:
        try:
            names = " ".join(p.cmdline()[:3])
            p.kill()
        except psutil.Error:
            continue
        warnings.warn(f"{item.nodeid} left process {p.pid} ({names}) running: killed", stacklevel=1)
    psutil.wait_procs(left, timeout=5)


_BEFORE_CALL = pytest.StashKey[set[int]]()


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
