"""Deployment-wide totals of what the processes did, for rates (the console's overview).

Courier's counters (:mod:`delivery.metrics`) live in each process's memory, and the
work of one deployment is spread over edges and workers. So every Courier process
publishes its own totals, every :data:`PUBLISH_EVERY_S`, as one field of one hash
(``totals``: process -> JSON), stamped with Redis server time; a reader takes every
field and turns two readings into rates by diffing each process's own numbers (a
process that restarted starts again from zero under a new name, so no sum ever goes
back). This is off the hot path: one ``HSET`` per process every two seconds, and no
script changes.

What a process counts is what Courier's own loops did: a backend that enqueues through
its own :class:`~delivery.producer.Producer` (no loop of Courier's) adds nothing to a
process's ``enqueued``. So the deployment-wide ``enqueued`` a reading also carries comes
from Redis instead: the enqueue scripts count every message they accept in the
partition's ``reached`` hash (field ``enqueued``), and a reading sums the partitions.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import orjson
import redis.asyncio as aioredis
from prometheus_client import Counter

from . import clock
from .keys import TOTALS_STALE_MS, Keyspace
from .metrics import DEAD, DELIVERED, DISPATCHED, ENQUEUED, EXPIRED, RETRIED
from .text import text

log = logging.getLogger(__name__)

PUBLISH_EVERY_S = 2.0
NAMES = ("enqueued", "delivered", "retried", "parked", "expired", "dead")
"""What each process publishes, in the order the console draws them."""


def _sum(counter: Counter, **match: str) -> int:
    """A counter's value summed over its labels, only those with these label values."""
    total = 0.0
    for metric in counter.collect():
        for s in metric.samples:
            if s.name.endswith("_total") and all(s.labels.get(k) == v for k, v in match.items()):
                total += s.value
    return int(total)


def snapshot() -> dict[str, int]:
    """This process's totals since it started (its Prometheus counters)."""
    return {
        "enqueued": _sum(ENQUEUED),
        "delivered": _sum(DELIVERED),
        "retried": _sum(RETRIED, result="scheduled"),
        "parked": _sum(DISPATCHED, outcome="parked"),
        "expired": _sum(DISPATCHED, outcome="expired")
        + _sum(RETRIED, result="expired")
        + _sum(EXPIRED),
        "dead": _sum(DEAD),
    }


class Totals:
    """Publish this process's totals; read every process's."""

    def __init__(self, client: aioredis.Redis, *, keyspace: Keyspace, process: str) -> None:
        self.redis = client
        self.keyspace = keyspace
        self.key = keyspace.totals
        self.process = process

    async def publish(self) -> float:
        """One publication (a loop step): this process's field, and the fields of
        processes silent for :data:`TOTALS_STALE_MS` removed. Returns the pause."""
        now = await clock.server_ms(self.redis)
        value = orjson.dumps({"at": now, **snapshot()})
        await self.redis.hset(self.key, self.process, value)
        stale = [
            p for p, row in (await self.read_raw()).items() if now - row["at"] > TOTALS_STALE_MS
        ]
        if stale:
            await self.redis.hdel(self.key, *stale)
        return PUBLISH_EVERY_S

    async def leave(self) -> None:
        """A clean stop: this process's field goes at once."""
        try:
            await self.redis.hdel(self.key, self.process)
        except Exception:  # Redis may be gone at shutdown; the field then goes stale
            log.warning("could not remove the totals of %s", self.process, exc_info=True)

    async def read_raw(self) -> dict[str, dict[str, int]]:
        raw: dict[Any, Any] = await self.redis.hgetall(self.key)
        return {text(k): orjson.loads(v) for k, v in raw.items()}

    async def enqueued(self) -> int:
        """Messages enqueued in the whole deployment since its start, by whichever
        producer: the ``enqueued`` fields of the partitions' ``reached`` hashes."""
        pipe = self.redis.pipeline(transaction=False)
        for p in range(self.keyspace.partitions):
            pipe.hget(self.keyspace.key(p, "reached"), "enqueued")
        return sum(int(n or 0) for n in await pipe.execute())

    async def read(self) -> dict[str, Any]:
        """Every live process's totals and their sum, and the messages enqueued in the
        whole deployment: ``{"time", "processes": [{"process", "at", <names>}], "sum":
        {<names>}, "enqueued"}`` (times in epoch ms, Redis server time)."""
        now = await clock.server_ms(self.redis)
        rows = [
            {"process": p, **row}
            for p, row in sorted((await self.read_raw()).items())
            if now - row["at"] <= TOTALS_STALE_MS
        ]
        return {
            "time": now,
            "processes": rows,
            "sum": _add(rows),
            "enqueued": await self.enqueued(),
        }


def _add(rows: Iterable[dict[str, Any]]) -> dict[str, int]:
    out = dict.fromkeys(NAMES, 0)
    for row in rows:
        for name in NAMES:
            out[name] += int(row.get(name, 0))
    return out
