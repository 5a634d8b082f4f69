"""The scheduler: due delayed and retried messages go back to their stream, parked
messages past their time expire, messages not acked by their escalation time get their
`undelivered` event, and the streams lose the entries every consumer is done with.
(Unacknowledged messages are found by the consumers' reclaim, which takes over what
waits in the consumer group past the ack timeout: see
:meth:`consumers.worker.Worker.reclaim`.)

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
        """One pass over every partition (one round trip): promoted, expired and
        undelivered."""
        done = await self.store.sweep(self.partitions, limit=self.batch)
        PROMOTED.inc(done["promoted"])
        EXPIRED.inc(done["expired"])
        ESCALATED.inc(done["undelivered"])
        return done

    async def step(self) -> float:
        """Run a tick; rest for the interval unless a batch was full."""
        done = await self.tick()
        busy = any(v >= self.batch for v in done.values())
        return 0.0 if busy else self.interval
