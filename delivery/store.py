"""State changes of accepted messages, each one atomic script call.

The consumers (dispatch, retries, promotion, expiry) and the edge (acks, unparking,
hand-back) call these methods. Each builds the typed call of its script
(:mod:`delivery.calls`, :mod:`delivery.edge_calls`), runs it, and does the bookkeeping
around it: the delivery metrics (enqueue-to-first-push and enqueue-to-ack latencies,
deliveries, retries, dead letters) and one log line per retry decision.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from . import clock
from .backoff import backoff_seconds
from .calls import (
    Dispatched,
    DispatchMany,
    Entry,
    Escalate,
    Expire,
    Overdue,
    Promote,
    Purge,
    PurgeCode,
    Push,
    Reclaim,
    Reclaimed,
    Replay,
    ReplayCode,
    Retry,
    RetryOutcome,
    ScriptCall,
    Trim,
)
from .edge_calls import AckCode, Acked, AckMany, AckRequest, Reply, ReplyCode, Unpark
from .exceptions import Conflict, NotFound
from .keys import DLQ_MAX_LEN, EVENTS_MAX_LEN, Keyspace, partition_from_id
from .members import conn_member
from .message import Message
from .metrics import (
    DEAD,
    DELIVER_SECONDS,
    DELIVERED,
    ENQUEUE_TO_DELIVER_SECONDS,
    RETRIED,
    observe_many,
)
from .scripts import Scripts
from .settings import Settings
from .status import Status
from .tasks import Cancel, CancelCode

__all__ = ["AckRequest", "Dispatched", "Entry", "Push", "Store", "Timing"]

log = logging.getLogger(__name__)

BATCH = 100  # entries per dispatch_many call: cheap per message, short for Redis


@dataclass(frozen=True)
class Timing:
    """Durations the scripts need, in milliseconds (retry delays in seconds), and the
    caps they keep (fixed ones from :mod:`delivery.keys`)."""

    ack_timeout_ms: int = 30_000
    heartbeat_timeout_ms: int = 60_000
    park_ttl_ms: int = 604_800_000
    retention_ms: int = 86_400_000
    dead_keep_ms: int = 604_800_000
    dlq_max_len: int = DLQ_MAX_LEN
    retry_base_seconds: float = 1.0
    retry_max_seconds: float = 900.0
    events_max_len: int = EVENTS_MAX_LEN  # 0: no lifecycle events (COURIER_EVENTS=false)

    @classmethod
    def from_settings(cls, s: Settings) -> Timing:
        return cls(
            ack_timeout_ms=int(s.ack_timeout_seconds * 1000),
            heartbeat_timeout_ms=int(s.heartbeat_timeout_seconds * 1000),
            park_ttl_ms=s.park_ttl_seconds * 1000,
            retention_ms=s.retention_seconds * 1000,
            dead_keep_ms=max(s.park_ttl_seconds, s.retention_seconds) * 1000,
            retry_base_seconds=s.retry_base_seconds,
            retry_max_seconds=s.retry_max_seconds,
            events_max_len=s.events_max_len if s.events else 0,
        )


def _first_pushes(pushes: Sequence[Push]) -> None:
    """The enqueue-to-first-push latency of the pushes that are first attempts."""
    now_ms = clock.wall() * 1000
    waited = [max(now_ms - p.created_ms, 0) / 1000 for p in pushes if p.attempt == 1]
    observe_many(ENQUEUE_TO_DELIVER_SECONDS, waited)


class Store:
    """Atomic state changes of messages (see ``delivery/lua``)."""

    def __init__(self, client: aioredis.Redis, *, keyspace: Keyspace, timing: Timing) -> None:
        self.redis = client
        self.keyspace = keyspace
        self.timing = timing
        self.scripts = Scripts(client, events_max_len=timing.events_max_len)

    # -- consumers ---------------------------------------------------------------------
    async def dispatch(self, entries: Sequence[Entry]) -> list[Dispatched]:
        """Send (or park, expire, skip) each read entry; returns (entry, outcome, push)
        in the order of ``entries``."""
        if not entries:
            return []
        t = self.timing
        by_part: dict[int, list[Entry]] = {}
        for e in entries:
            by_part.setdefault(e.partition, []).append(e)
        calls = [  # one script call per partition and batch
            DispatchMany(
                self.keyspace.part(p),
                es[k : k + BATCH],
                t.heartbeat_timeout_ms,
                t.park_ttl_ms,
                t.retention_ms,
            )
            for p, es in by_part.items()
            for k in range(0, len(es), BATCH)
        ]
        answers: dict[int, Dispatched] = {}
        pushes = []
        for batch in await self.scripts.run_many(calls, self.redis):
            for d in batch:
                entry, _, push = d
                answers[id(entry)] = d
                if push is not None:
                    pushes.append(push)
        _first_pushes(pushes)
        return [answers[id(e)] for e in entries]

    async def reclaim(
        self,
        partitions: Sequence[int],
        *,
        consumer: str,
        cursors: dict[int, tuple[str, str, str, str]],
        count: int = 100,
        poison_deliveries: int = 5,
    ) -> list[Reclaimed]:
        """What has been pending past the ack timeout in each partition, claimed by
        ``consumer`` and sorted out by ``reclaim.lua`` in one round trip (poison entries
        are dead-lettered there); ``cursors`` is where each partition's scan goes on.
        The caller dispatches the entries and retries the overdue messages."""
        t = self.timing
        calls = [
            Reclaim(
                self.keyspace.part(p),
                consumer,
                t.ack_timeout_ms,
                count,
                poison_deliveries,
                t.dlq_max_len,
                t.dead_keep_ms,
                cursors.get(p, ("",) * 4),
            )
            for p in partitions
        ]
        got = await self.scripts.run_many(calls, self.redis)
        for r in got:
            if r.buried:
                DEAD.labels("poison").inc(len(r.buried))
        return got

    async def retry_overdue(self, partition: int, overdue: Sequence[Overdue]) -> dict[str, int]:
        """Reschedule (or bury, or expire) sent messages whose ack did not come in time;
        returns how many of each :class:`RetryOutcome`."""
        prefix = self.keyspace.part(partition)
        ids = [(o.id, o.record, o.attempts) for o in overdue]
        return await self._retry(prefix, ids, reason="ack_timeout")

    async def nack(self, pushes: Sequence[Push | str], *, reason: str) -> dict[str, int]:
        """Pushes that reached no connection at all: retry now-ish, without waiting (a
        message id instead of a push: whichever in-flight record it has)."""
        by_part: dict[str, list[tuple[str, str, int]]] = {}
        for p in pushes:
            mid, record = (p, "") if isinstance(p, str) else (p.id, p.record)
            by_part.setdefault(self.keyspace.part_of_message(mid), []).append((mid, record, 0))
        counts: dict[str, int] = {}
        for prefix, ids in by_part.items():  # one script call per partition
            for k, v in (await self._retry(prefix, ids, reason=reason)).items():
                counts[k] = counts.get(k, 0) + v
        return counts

    async def _retry(
        self, prefix: str, ids: list[tuple[str, str, int]], *, reason: str
    ) -> dict[str, int]:
        if not ids:
            return {}
        t = self.timing
        delays = [
            (
                mid,
                record,
                int(
                    backoff_seconds(
                        max(attempt, 1), base=t.retry_base_seconds, cap=t.retry_max_seconds
                    )
                    * 1000
                ),
            )
            for mid, record, attempt in ids
        ]
        call = Retry(prefix, reason, t.retention_ms, t.dlq_max_len, t.dead_keep_ms, delays)
        counts: dict[str, int] = {}
        for (mid, _, _), outcome in zip(ids, await self.scripts.run(call), strict=True):
            counts[outcome] = counts.get(outcome, 0) + 1
            if outcome is not RetryOutcome.SKIP:
                RETRIED.labels(outcome, reason).inc()
                if outcome is RetryOutcome.DEAD:
                    DEAD.labels(reason).inc()
                log.info("message %s %s (%s)", mid, outcome, reason, extra={"message_id": mid})
        return counts

    async def evict(
        self, user_id: str, targets: Sequence[tuple[str, str]], *, own_node: str | None = None
    ) -> int:
        """Forget connections that could not be reached because their node is gone
        (no heartbeat within the heartbeat timeout). A live node that missed a frame
        (it was resubscribing after a Redis outage) keeps its connections: the retry
        reaches them. Connections that `own_node` (this process) does not hold are
        ghosts and always forgotten. Returns how many were forgotten."""
        if not targets:
            return 0
        cutoff = await clock.server_ms(self.redis) - self.timing.heartbeat_timeout_ms
        nodes = sorted({n for n, _ in targets})
        seen = await self.redis.zmscore(self.keyspace.nodes, nodes)
        alive = {n for n, ms in zip(nodes, seen, strict=True) if ms is not None and ms > cutoff}
        alive.discard(own_node or "")
        dead = [conn_member(n, c) for n, c in targets if n not in alive]
        if dead:
            await self.redis.zrem(self.keyspace.user(user_id, "conns"), *dead)
        return len(dead)

    async def promote(self, partition: int, *, limit: int = 500) -> tuple[int, int]:
        """Queue delayed messages that are due; returns (moved, next due ms or -1)."""
        prefix = self.keyspace.part(partition)
        return await self.scripts.run(Promote(prefix, limit, self.timing.retention_ms))

    async def expire_parked(self, partition: int, *, limit: int = 500) -> int:
        prefix = self.keyspace.part(partition)
        return await self.scripts.run(Expire(prefix, limit, self.timing.retention_ms))

    async def sweep(self, partitions: Sequence[int], *, limit: int = 500) -> dict[str, int]:
        """The scheduler's pass over many partitions: ``promote``, ``expire``, ``trim``
        and ``escalate`` of all of them in one pipelined round trip. Returns counts:
        promoted, expired, undelivered. (Unacknowledged messages are found by the
        consumers' reclaim, see :meth:`reclaim`.)"""
        retention = self.timing.retention_ms
        calls: list[ScriptCall[Any]] = []
        for p in partitions:
            prefix = self.keyspace.part(p)
            calls += [
                Promote(prefix, limit, retention),
                Expire(prefix, limit, retention),
                Trim(prefix),
                Escalate(prefix, limit),
            ]
        results = await self.scripts.run_many(calls, self.redis)
        done = {"promoted": 0, "expired": 0, "undelivered": 0}
        for k in range(len(partitions)):
            promoted, expired, _, escalated = results[4 * k : 4 * k + 4]
            done["promoted"] += promoted.moved
            done["expired"] += expired
            done["undelivered"] += escalated
        return done

    # -- edge --------------------------------------------------------------------------
    async def ack(
        self, *, user_id: str, conn_id: str, node_id: str, message_ids: Sequence[str]
    ) -> dict[str, AckCode]:
        """Acknowledge messages for a user; returns a code per id (see ``ack.lua``)."""
        (codes,) = await self.ack_many([AckRequest(user_id, conn_id, node_id, message_ids)])
        return codes

    async def ack_many(self, requests: Sequence[AckRequest]) -> list[dict[str, AckCode]]:
        """Several acks (of any users) in one pipelined round trip, one script call per
        partition; returns each request's code per id."""
        t = self.timing
        codes: list[dict[str, AckCode]] = []
        by_part: dict[str, list[int]] = {}  # partition prefix -> indexes of its requests
        asked: list[AckRequest] = []  # each request with only the ids Redis is asked about
        for k, req in enumerate(requests):
            known, ids = self._ack_ids(req.user_id, req.message_ids)
            codes.append(known)
            if known:  # some ids were answered here: ask Redis about the others only
                req = AckRequest(req.user_id, req.conn_id, req.node_id, ids)
            asked.append(req)
            if ids:
                by_part.setdefault(self.keyspace.part_of_user(req.user_id), []).append(k)
        if not by_part:
            return codes
        calls = [
            AckMany(prefix, [asked[k] for k in ks], t.retention_ms)
            for prefix, ks in by_part.items()
        ]
        delivered: dict[str | None, int] = {}  # per priority
        latencies: list[float] = []  # seconds, one per id acked now
        for ks, answers in zip(
            by_part.values(), await self.scripts.run_many(calls, self.redis), strict=True
        ):
            for k, acked in zip(ks, answers, strict=True):
                self._ack_codes(asked[k], codes[k], acked, delivered, latencies)
        for prio, n in delivered.items():  # the metrics once per call, not per id
            DELIVERED.labels(prio).inc(n)
        observe_many(DELIVER_SECONDS, latencies)
        return codes

    def _ack_ids(
        self, user_id: str, message_ids: Sequence[str]
    ) -> tuple[dict[str, AckCode], list[str]]:
        """Codes for ids that cannot be this user's, and the ids left to ask Redis about."""
        codes: dict[str, AckCode] = {}
        mine = self.keyspace.partition_of(user_id)
        ids = []
        for mid in message_ids:
            try:
                part = partition_from_id(mid)
            except ValueError:
                codes[mid] = AckCode.UNKNOWN
                continue
            if part != mine:  # another user's message lives elsewhere: never ours
                codes[mid] = AckCode.UNKNOWN
                continue
            ids.append(mid)
        return codes, ids

    @staticmethod
    def _ack_codes(
        req: AckRequest,
        codes: dict[str, AckCode],
        acked: list[Acked],
        delivered: dict[str | None, int],
        latencies: list[float],
    ) -> None:
        """Each id's code into ``codes``; the ids acked now counted into ``delivered``
        (per priority) and their latencies into ``latencies``."""
        debug = log.isEnabledFor(logging.DEBUG)
        for mid, (code, prio, latency_ms) in zip(req.message_ids, acked, strict=True):
            codes[mid] = code
            if latency_ms is not None:  # ok
                delivered[prio] = delivered.get(prio, 0) + 1
                latencies.append(latency_ms / 1000)
                if debug:
                    log.debug(
                        "message %s delivered to %s",
                        mid,
                        req.conn_id,
                        extra={"message_id": mid, "user_id": req.user_id, "conn_id": req.conn_id},
                    )

    async def unpark(
        self, *, user_id: str, node_id: str, conn_id: str, limit: int
    ) -> tuple[int, list[Push]]:
        """Hand the next parked messages to one connection; returns (remaining, pushes)."""
        t = self.timing
        prefix = self.keyspace.part_of_user(user_id)
        got = await self.scripts.run(
            Unpark(prefix, user_id, node_id, conn_id, limit, t.retention_ms)
        )
        _first_pushes(got.pushes)
        return got

    async def reply(self, *, user_id: str, conn_id: str, message_id: str, data: bytes) -> ReplyCode:
        """Record a user's answer to a message that asked for one (see ``reply.lua``)."""
        try:
            if partition_from_id(message_id) != self.keyspace.partition_of(user_id):
                return ReplyCode.UNKNOWN
        except ValueError:
            return ReplyCode.UNKNOWN
        call = Reply(
            self.keyspace.part_of_user(user_id),
            user_id,
            conn_id,
            message_id,
            data,
            self.keyspace.replies_channel(message_id),
            self.timing.retention_ms,
        )
        return await self.scripts.run(call)

    async def request_cancel(self, *, user_id: str, task_id: str) -> CancelCode:
        """A user asks the producer of one of their tasks to cancel it."""
        prefix = self.keyspace.part_of_user(user_id)
        channel = self.keyspace.cancel_channel(task_id)
        return await self.scripts.run(Cancel(prefix, user_id, task_id, channel))

    # -- operators -----------------------------------------------------------------------
    async def get(self, message_id: str) -> Message:
        try:
            key = self.keyspace.msg(message_id)
        except ValueError:
            raise NotFound(f"no message {message_id!r}") from None
        # the client has no decode_responses: bytes (redis-py types either)
        h: dict[bytes, bytes] = await self.redis.hgetall(key)  # type: ignore[assignment]
        if not h:
            raise NotFound(f"no message {message_id!r} (unknown, or its retention ended)")
        return Message.from_hash(message_id, h)

    async def replay(self, message_id: str, *, by: str = "operator") -> Status:
        """Give a dead message a fresh cycle of attempts; returns its new status
        (queued). :class:`NotFound` when there is no such message, :class:`Conflict`
        when it is not dead."""
        call = Replay(self._prefix(message_id), message_id, self.timing.retention_ms, by)
        answer = await self.scripts.run(call)
        if answer.code is ReplayCode.UNKNOWN:
            raise NotFound(f"no message {message_id!r}")
        if answer.code is ReplayCode.NOT_DEAD:
            raise Conflict(f"message {message_id} is {answer.status}, not dead; nothing replayed")
        log.info("message %s replayed by %s", message_id, by, extra={"message_id": message_id})
        return Status.QUEUED

    async def purge(self, message_id: str) -> None:
        answer = await self.scripts.run(Purge(self._prefix(message_id), message_id))
        if answer.code is PurgeCode.UNKNOWN:
            raise NotFound(f"no message {message_id!r}")
        if answer.code is PurgeCode.NOT_LISTED:
            raise Conflict(
                f"message {message_id} is {answer.status}, not in the dead-letter stream"
            )

    def _prefix(self, message_id: str) -> str:
        try:
            return self.keyspace.part_of_message(message_id)
        except ValueError:
            raise NotFound(f"no message {message_id!r}") from None
