"""Webhook state in Redis: the endpoints the admin API added, one delivery job per
endpoint and event, the webhook dead letters, and each endpoint's counters.

Jobs live in the partition of their event (keys ``wh_due``, ``wh_jobs``, ``wh_counts``,
``wh_dlq`` of :data:`delivery.keys.PARTITION_LAYOUT`), so fanning an event out is
atomic with acking it (``lua/wh_fanout.lua``), and every later change of a job is one
script too: claimed with a lease (``wh_claim``), finished (``wh_done``), failed and
rescheduled or dead-lettered (``wh_fail``), replayed or purged (``wh_replay``), dropped
with its endpoint (``wh_drop``). Due times and leases are Redis server time. An
endpoint's counters and last result (key ``wh_stat``) are bookkeeping written after each
attempt.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

import orjson
import redis.asyncio as aioredis

from .events import split_event_id
from .exceptions import Conflict, NotFound
from .fields import WebhookDeadField
from .keys import DLQ_MAX_LEN, Keyspace
from .message import iso_ms
from .scripts import Scripts
from .text import text
from .webhooks import Endpoint, endpoint_from


class FailOutcome(StrEnum):
    RETRY = "retry"  # due again after its backoff delay
    DEAD = "dead"  # attempts used up: in the webhook dead-letter stream
    GONE = "gone"  # finished or dead already (another sender took it over)


@dataclass(frozen=True, slots=True)
class Job:
    """One event to deliver to one endpoint."""

    endpoint: str
    event_id: str
    body: bytes
    attempts: int  # made before this one

    @property
    def partition(self) -> int:
        return split_event_id(self.event_id)[0]


@dataclass(frozen=True, slots=True)
class FanOut:
    """``wh_fanout.lua``: ARGV group, then per event: entry id, event id, body, k, k
    endpoint ids."""

    SCRIPT: ClassVar[str] = "wh_fanout"
    prefix: str
    group: str
    items: Sequence[tuple[str, str, bytes, Sequence[str]]]

    def args(self) -> list[Any]:
        out: list[Any] = [self.group]
        for entry, eid, body, endpoints in self.items:
            out += (entry, eid, body, len(endpoints), *endpoints)
        return out

    def parse(self, reply: Any) -> int:
        return int(reply)


@dataclass(frozen=True, slots=True)
class Claim:
    """``wh_claim.lua``: answers (server ms, next due ms or -1, jobs)."""

    SCRIPT: ClassVar[str] = "wh_claim"
    prefix: str
    endpoint: str
    limit: int
    lease_ms: int

    def args(self) -> list[Any]:
        return [self.endpoint, self.limit, self.lease_ms]

    def parse(self, reply: Any) -> tuple[int, int, list[Job]]:
        jobs = [
            Job(self.endpoint, text(reply[i]), reply[i + 1], int(reply[i + 2]))
            for i in range(2, len(reply), 3)
        ]
        return int(reply[0]), int(float(reply[1])), jobs


@dataclass(frozen=True, slots=True)
class Done:
    SCRIPT: ClassVar[str] = "wh_done"
    prefix: str
    endpoint: str
    event_ids: Sequence[str]

    def args(self) -> list[Any]:
        return [self.endpoint, *self.event_ids]

    def parse(self, reply: Any) -> int:
        return int(reply)


@dataclass(frozen=True, slots=True)
class Fail:
    """``wh_fail.lua``: per job (event id, delay ms, error)."""

    SCRIPT: ClassVar[str] = "wh_fail"
    prefix: str
    endpoint: str
    max_attempts: int
    dlq_max_len: int
    failures: Sequence[tuple[str, int, str]]

    def args(self) -> list[Any]:
        out: list[Any] = [self.endpoint, self.max_attempts, self.dlq_max_len]
        for eid, delay_ms, error in self.failures:
            out += (eid, delay_ms, error)
        return out

    def parse(self, reply: Any) -> list[FailOutcome]:
        return [FailOutcome(text(r)) for r in reply]


@dataclass(frozen=True, slots=True)
class ReplayDead:
    SCRIPT: ClassVar[str] = "wh_replay"
    prefix: str
    entry_id: str
    action: str  # replay | purge

    def args(self) -> list[Any]:
        return [self.entry_id, self.action]

    def parse(self, reply: Any) -> str:
        return text(reply)


@dataclass(frozen=True, slots=True)
class Drop:
    """``wh_drop.lua``: a deleted endpoint's jobs in one partition."""

    SCRIPT: ClassVar[str] = "wh_drop"
    prefix: str
    endpoint: str

    def args(self) -> list[Any]:
        return [self.endpoint]

    def parse(self, reply: Any) -> int:
        return int(reply)


_STAT_INTS = ("attempts", "delivered", "failed", "dead", "consecutive_failures")


class WebhookStore:
    def __init__(
        self,
        client: aioredis.Redis,
        *,
        keyspace: Keyspace,
        static: Sequence[Endpoint] = (),
        dlq_max_len: int = DLQ_MAX_LEN,
    ) -> None:
        self.redis = client
        self.keyspace = keyspace
        self.static = {e.id: e for e in static}
        self.dlq_max_len = dlq_max_len
        self.scripts = Scripts(client)

    # -- endpoints -------------------------------------------------------------------
    async def endpoints(self) -> list[Endpoint]:
        """The settings' endpoints, then those of the admin API, by id."""
        stored: dict[bytes, bytes] = await self.redis.hgetall(self.keyspace.webhooks)  # type: ignore[assignment]
        out = dict(self.static)
        for k, v in sorted(stored.items()):
            if text(k) not in out:
                out[text(k)] = endpoint_from(orjson.loads(v), source="api")
        return list(out.values())

    async def get(self, endpoint_id: str) -> Endpoint:
        if endpoint_id in self.static:
            return self.static[endpoint_id]
        raw = await self.redis.hget(self.keyspace.webhooks, endpoint_id)
        if raw is None:
            raise NotFound(f"no webhook endpoint {endpoint_id!r}")
        return endpoint_from(orjson.loads(raw), source="api")

    async def put(self, ep: Endpoint) -> bool:
        """Add or replace an admin endpoint; True when it is new."""
        self._not_static(ep.id, "replaced")
        return bool(await self.redis.hset(self.keyspace.webhooks, ep.id, ep.stored()))

    async def delete(self, endpoint_id: str) -> None:
        """Remove an admin endpoint with its waiting jobs and counters (its dead letters
        stay until purged)."""
        self._not_static(endpoint_id, "deleted")
        if not await self.redis.hdel(self.keyspace.webhooks, endpoint_id):
            raise NotFound(f"no webhook endpoint {endpoint_id!r}")
        calls = [Drop(self.keyspace.part(p), endpoint_id) for p in range(self.keyspace.partitions)]
        await self.scripts.run_many(calls, self.redis)
        await self.redis.delete(self.keyspace.webhook_stat(endpoint_id))

    def _not_static(self, endpoint_id: str, what: str) -> None:
        if endpoint_id in self.static:
            raise Conflict(
                f"webhook endpoint {endpoint_id!r} comes from COURIER_WEBHOOKS and cannot be "
                f"{what} here; change the setting"
            )

    def _key(self, partition: int, name: str, endpoint: str | None = None) -> str:
        if endpoint is None:
            return self.keyspace.key(partition, name)
        return self.keyspace.key(partition, name, endpoint=endpoint)

    # -- jobs -----------------------------------------------------------------------------
    async def fan_out(
        self, partition: int, group: str, items: Sequence[tuple[str, str, bytes, Sequence[str]]]
    ) -> int:
        """Ack events of ``group`` and make their jobs; returns how many jobs were made."""
        if not items:
            return 0
        return await self.scripts.run(FanOut(self.keyspace.part(partition), group, items))

    async def fan_out_many(
        self, group: str, by_part: Mapping[int, Sequence[tuple[str, str, bytes, Sequence[str]]]]
    ) -> int:
        """:meth:`fan_out` of several partitions in one pipelined round trip."""
        calls = [FanOut(self.keyspace.part(p), group, items) for p, items in by_part.items()]
        return sum(await self.scripts.run_many(calls)) if calls else 0

    async def claim(
        self, endpoint: str, partition: int, *, limit: int, lease_ms: int
    ) -> tuple[int, int, list[Job]]:
        """Due jobs of one partition, leased: (server ms, next due ms or -1, jobs)."""
        return await self.scripts.run(
            Claim(self.keyspace.part(partition), endpoint, limit, lease_ms)
        )

    async def done(self, job: Job) -> int:
        prefix = self.keyspace.part(job.partition)
        return await self.scripts.run(Done(prefix, job.endpoint, [job.event_id]))

    async def fail(self, job: Job, *, delay_ms: int, error: str, max_attempts: int) -> FailOutcome:
        call = Fail(
            self.keyspace.part(job.partition),
            job.endpoint,
            max_attempts,
            self.dlq_max_len,
            [(job.event_id, delay_ms, error[:500])],
        )
        (outcome,) = await self.scripts.run(call)
        return outcome

    # -- counters and status --------------------------------------------------------------
    async def record(
        self, endpoint: str, *, ok: bool, at_ms: int, latency_ms: int, result: str, dead: bool
    ) -> None:
        """Count one attempt and keep its result (``result``: the HTTP status or error)."""
        key = self.keyspace.webhook_stat(endpoint)
        pipe = self.redis.pipeline(transaction=True)
        pipe.hincrby(key, "attempts", 1)
        if ok:
            pipe.hincrby(key, "delivered", 1)
            pipe.hset(key, mapping={"consecutive_failures": 0, "last_success_at": at_ms})
        else:
            pipe.hincrby(key, "failed", 1)
            pipe.hincrby(key, "consecutive_failures", 1)
            pipe.hset(key, mapping={"last_failure_at": at_ms, "last_error": result})
            if dead:
                pipe.hincrby(key, "dead", 1)
        pipe.hset(key, mapping={"last_result": result, "last_latency_ms": latency_ms})
        await pipe.execute()

    async def status(self, ep: Endpoint) -> dict[str, Any]:
        """The endpoint with its health: jobs waiting, dead letters, counters, last result."""
        stat: dict[bytes, bytes] = await self.redis.hgetall(self.keyspace.webhook_stat(ep.id))  # type: ignore[assignment]
        s = {text(k): text(v) for k, v in stat.items()}
        pending = dead = 0
        for p in range(self.keyspace.partitions):
            got = await self.redis.hmget(
                self._key(p, "wh_counts"), [f"{ep.id}|pending", f"{ep.id}|dead"]
            )
            pending += int(got[0] or 0)
            dead += int(got[1] or 0)
        failing = int(s.get("consecutive_failures", 0)) > 0
        out: dict[str, Any] = {
            **ep.public(),
            "state": "disabled" if not ep.enabled else ("failing" if failing else "ok"),
            "pending": pending,
            "dead_letters": dead,
            **{k: int(s.get(k, 0)) for k in _STAT_INTS},
            "last_result": s.get("last_result"),
            "last_error": s.get("last_error"),
            "last_latency_ms": int(s["last_latency_ms"]) if "last_latency_ms" in s else None,
        }
        for k in ("last_success_at", "last_failure_at"):
            out[k] = iso_ms(int(s[k])) if k in s else None
        return out

    # -- dead letters ---------------------------------------------------------------------
    async def dead_letters(self, endpoint: str, *, limit: int = 100) -> list[dict[str, Any]]:
        """The endpoint's dead webhook deliveries, newest first."""
        rows = await self._dead(endpoint)
        rows.sort(key=lambda r: r["dead_at_ms"], reverse=True)
        return [
            {k: v for k, v in r.items() if k not in ("dead_at_ms", "partition", "entry")}
            for r in rows[:limit]
        ]

    async def _dead(
        self, endpoint: str, event_ids: Iterable[str] | None = None
    ) -> list[dict[str, Any]]:
        wanted = None if event_ids is None else set(event_ids)
        out = []
        F = WebhookDeadField
        for p in range(self.keyspace.partitions):
            rows: Any = await self.redis.xrange(self._key(p, "wh_dlq"))
            for entry, fields in rows:
                f = {text(k): v for k, v in fields.items()}
                eid = text(f[F.EVENT])
                if text(f[F.ENDPOINT]) != endpoint or (wanted is not None and eid not in wanted):
                    continue
                dead_ms = int(text(entry).partition("-")[0])
                out.append(
                    {
                        "event_id": eid,
                        "type": orjson.loads(f[F.BODY]).get("type"),
                        "endpoint": endpoint,
                        "attempts": int(f[F.ATTEMPTS]),
                        "error": text(f[F.ERROR]),
                        "dead_at": iso_ms(dead_ms),
                        "event": orjson.Fragment(f[F.BODY]),
                        "dead_at_ms": dead_ms,
                        "partition": p,
                        "entry": text(entry),
                    }
                )
        return out

    async def replay(self, endpoint: str, event_ids: Iterable[str] | None = None) -> int:
        """Dead deliveries of the endpoint (all, or those events) get a fresh cycle of
        attempts, due now; returns how many."""
        await self.get(endpoint)  # NotFound for an unknown endpoint
        return await self._act(endpoint, event_ids, "replay")

    async def purge(self, endpoint: str, event_ids: Iterable[str] | None = None) -> int:
        return await self._act(endpoint, event_ids, "purge")

    async def _act(self, endpoint: str, event_ids: Iterable[str] | None, action: str) -> int:
        rows = await self._dead(endpoint, event_ids)
        if event_ids is not None and not rows:
            raise NotFound(f"no dead webhook delivery of those events for {endpoint!r}")
        calls = [ReplayDead(self.keyspace.part(r["partition"]), r["entry"], action) for r in rows]
        answers = await self.scripts.run_many(calls, self.redis) if calls else []
        return sum(1 for a in answers if a != "unknown")
