"""The test harness itself: an edge that cannot start fails its own test with a clear
error and leaves the following tests their own keys, event loop and edges.

The CI run this guards against: one edge lost its port to another process between
``free_port()`` and uvicorn's bind, uvicorn called ``sys.exit(3)`` in the server task, and
the SystemExit that left the event loop cut the teardown short: the tests after it ran
on the failed test's keyspace (cached), in its loop, next to its still running edges.
These tests run in this order (pytest keeps a module's order).
"""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from delivery.keys import Keyspace
from tests.api.conftest import EdgeFactory
from tests.servers import StartupFailed, listening, port_of

_seen: dict[str, object] = {}


async def test_an_edge_on_a_taken_port_fails_with_the_reason(
    edge: EdgeFactory, keyspace: Keyspace, r: aioredis.Redis
) -> None:
    running = await edge()  # a node of this test, to be stopped by the teardown
    await r.set(f"{keyspace.prefix}:mine", 1)
    _seen.update(prefix=keyspace.prefix, loop=asyncio.get_running_loop(), node=running)
    with listening() as taken:
        with pytest.raises(StartupFailed, match=f"{port_of(taken)}.*address already in use"):
            await edge(port=port_of(taken))
    assert (await running.http.get("/readyz")).status_code == 200  # the other one serves on


async def test_the_next_test_has_its_own_keys_loop_and_no_edge_left(
    keyspace: Keyspace, r: aioredis.Redis
) -> None:
    assert _seen, "runs after the test above"
    assert keyspace.prefix != _seen["prefix"]
    assert asyncio.get_running_loop() is not _seen["loop"]
    assert [k async for k in r.scan_iter(match=f"{_seen['prefix']}:*")] == []  # deleted
    assert _seen["node"].task.done()  # type: ignore[attr-defined]  # stopped by the teardown


async def test_a_system_exit_in_a_task_is_an_ordinary_error() -> None:
    async def exits() -> None:
        raise SystemExit(3)

    with pytest.raises(RuntimeError, match=r"SystemExit\(3\)"):
        await asyncio.create_task(exits())
