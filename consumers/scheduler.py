"""The scheduler: due delayed and retried messages go back to their stream,
unacknowledged messages are retried, parked messages past their time expire, and
messages not acked by their escalation time get their `undelivered` event.

It is a plain asyncio loop, not APScheduler: the jobs run every fraction of a second,
adapt their pace (a full batch runs again at once, an idle partition waits for the
next due time) and share the process's Redis client and shutdown. Every step is an
atomic script that re-checks its conditions, so any number of schedulers may run on
the same partitions (one per worker process) without locks or leaders.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from delivery.metrics import ESCALATED, EXPIRED, PROMOTED
from delivery.store import Store

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(
        self, *, store: Store, partitions: Sequence[int], batch: int = 500, interval: float = 0.25
    ) -> None:
        self.store = store
        self.partitions = list(partitions)
        self.batch = batch
        self.interval = interval

    async def tick(self) -> dict[str, int]:
        """One pass over every partition (one round trip, a second one only when
        messages are due for a retry); returns what it did."""
        swept = await self.store.sweep(self.partitions, limit=self.batch)
        done = {"promoted": 0, "scheduled": 0, "dead": 0, "expired": 0, "undelivered": 0}
        for result, n in swept.items():
            if result != "skip":  # the store counts retries (courier_retries_total)
                done[result] = done.get(result, 0) + n
        PROMOTED.inc(done["promoted"])
        EXPIRED.inc(done["expired"])
        ESCALATED.inc(done["undelivered"])
        return done

    async def step(self) -> float:
        """Run a tick; rest for the interval unless a batch was full."""
        done = await self.tick()
        busy = any(v >= self.batch for v in done.values())
        return 0.0 if busy else self.interval
