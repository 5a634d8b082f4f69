"""The end of a `producer.task(...)` block never hangs: its cancel watcher is a pubsub
read that redis-py's get_message can fail to cancel; the README's snippet hung on it
about once in five runs."""

from __future__ import annotations

import asyncio
import time

from tests.support import Harness


async def test_task_blocks_end_at_once_many_times(h: Harness) -> None:
    async def blocks() -> None:
        for i in range(40):
            async with h.producer.task(f"export-{i}", user_id="alice", total=3) as task:
                await task.increment(message="page 1 of 3")

    t0 = time.monotonic()
    await asyncio.wait_for(blocks(), 30)
    assert time.monotonic() - t0 < 15
    got = await h.producer.get_task("export-39", "alice")
    assert got["status"] == "completed" and got["progress"] == 100
