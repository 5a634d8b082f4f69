"""State changes of accepted messages, each one atomic script call.

The consumers (dispatch, retries, promotion, expiry) and the edge (acks, unparking,
hand-back) call these methods; the methods do the bookkeeping around the scripts
(decoding, metrics-free) and nothing else.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from .backoff import backoff_seconds
from .exceptions import Conflict, NotFound
from .keys import GROUP, Keyspace, partition_from_id
from .message import Message, message_frame
from .metrics import (
    DEAD,
    DELIVER_SECONDS,
    DELIVERED,
    ENQUEUE_TO_DELIVER_SECONDS,
    RETRIED,
)
from .scripts import Call, Scripts
from .settings import Settings

log = logging.getLogger(__name__)

BATCH = 100  # entries per dispatch_many call: cheap per message, short for Redis


@dataclass(frozen=True)
class Timing:
    """Durations the scripts need, in milliseconds (retry delays in seconds)."""

    ack_timeout_ms: int = 30_000
    heartbeat_timeout_ms: int = 60_000
    park_ttl_ms: int = 604_800_000
    retention_ms: int = 86_400_000
    dead_keep_ms: int = 604_800_000
    dlq_max_len: int = 100_000
    retry_base_seconds: float = 1.0
    retry_max_seconds: float = 900.0
    latency_samples: int = 1000

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
        )


@dataclass(frozen=True)
class Push:
    """A message on its way to one or more connections of its user."""

    id: str
    user_id: str
    priority: str
    attempt: int
    payload_json: bytes
    created_ms: int
    collapse_key: str | None = None
    topic: str | None = None
    reply_requested: bool = False
    targets: tuple[tuple[str, str], ...] = field(default_factory=tuple)  # (node, conn)

    def frame(self) -> bytes:
        return message_frame(
            message_id=self.id,
            priority=self.priority,
            payload_json=self.payload_json,
            created_ms=self.created_ms,
            attempt=self.attempt,
            collapse_key=self.collapse_key,
            topic=self.topic,
            reply_requested=self.reply_requested,
        )


@dataclass(frozen=True)
class AckRequest:
    """One ack frame: a user's connection acknowledging message ids."""

    user_id: str
    conn_id: str
    node_id: str
    message_ids: Sequence[str]


@dataclass(frozen=True)
class Entry:
    """One stream entry read by a consumer."""

    partition: int
    priority: str
    entry_id: str
    message_id: str
    user_id: str


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _first_push(push: Push) -> None:
    if push.attempt == 1:
        ENQUEUE_TO_DELIVER_SECONDS.observe(max(time.time() * 1000 - push.created_ms, 0) / 1000)


def _target(member: Any) -> tuple[str, str]:
    node, _, conn = _s(member).partition("|")
    return node, conn


class Store:
    """Atomic state changes of messages (see ``delivery/lua``)."""

    def __init__(self, client: aioredis.Redis, *, keyspace: Keyspace, timing: Timing) -> None:
        self.redis = client
        self.keyspace = keyspace
        self.timing = timing
        self.scripts = Scripts(client)

    # -- consumers ---------------------------------------------------------------------
    async def dispatch(self, entries: Sequence[Entry]) -> list[tuple[Entry, str, Push | None]]:
        """Send (or park, expire, skip) each read entry; returns (entry, outcome, push)."""
        if not entries:
            return []
        t = self.timing
        by_part: dict[int, list[Entry]] = {}
        for e in entries:
            by_part.setdefault(e.partition, []).append(e)
        batches = [
            (p, es[k : k + BATCH]) for p, es in by_part.items() for k in range(0, len(es), BATCH)
        ]
        calls: list[Call] = []
        for part, batch in batches:  # one script call per partition and batch
            args: list[Any] = [
                GROUP,
                t.ack_timeout_ms,
                t.heartbeat_timeout_ms,
                t.park_ttl_ms,
                t.retention_ms,
            ]
            for e in batch:
                args += [e.entry_id, e.message_id, e.user_id, e.priority]
            calls.append((self.scripts.dispatch_many, [self.keyspace.part(part)], args))
        answers: dict[int, Any] = {}
        results = await self.scripts.pipelined(calls, self.redis)
        for (_, batch), res in zip(batches, results, strict=True):
            for e, one in zip(batch, res, strict=True):
                answers[id(e)] = one
        out: list[tuple[Entry, str, Push | None]] = []
        for e, res in ((e, answers[id(e)]) for e in entries):
            outcome = _s(res[0])
            push = None
            if outcome == "sent":
                push = Push(
                    id=e.message_id,
                    user_id=e.user_id,
                    priority=e.priority,
                    attempt=int(res[1]),
                    payload_json=res[2],
                    created_ms=int(res[3]),
                    collapse_key=_s(res[4]) or None,
                    topic=_s(res[5]) or None,
                    reply_requested=_s(res[6]) == "1",
                    targets=tuple(_target(m) for m in res[7:]),
                )
                _first_push(push)
            out.append((e, outcome, push))
        return out

    async def bury_entry(self, entry: Entry, reason: str) -> str:
        t = self.timing
        res = await self.scripts.bury(
            keys=[self.keyspace.part(entry.partition)],
            args=[
                entry.entry_id,
                entry.message_id,
                entry.user_id,
                entry.priority,
                GROUP,
                reason,
                t.dlq_max_len,
                t.dead_keep_ms,
            ],
        )
        if _s(res) == "dead":
            DEAD.labels(reason).inc()
        return _s(res)

    async def retry_due(self, partition: int, *, limit: int = 200) -> dict[str, int]:
        """Reschedule (or bury, or expire) messages whose ack deadline passed."""
        prefix = self.keyspace.part(partition)
        flat = await self.scripts.due(keys=[prefix], args=[limit])
        ids = [(_s(flat[i]), int(flat[i + 1])) for i in range(0, len(flat), 3)]
        return await self._retry(prefix, ids, reason="ack_timeout", force=False)

    async def nack(self, message_ids: Sequence[str], *, reason: str) -> dict[str, int]:
        """Messages that could not be pushed at all: retry now-ish, without waiting."""
        by_part: dict[str, list[tuple[str, int]]] = {}
        for mid in message_ids:
            by_part.setdefault(self.keyspace.part_of_message(mid), []).append((mid, 0))
        counts: dict[str, int] = {}
        for prefix, ids in by_part.items():  # one script call per partition
            for k, v in (await self._retry(prefix, ids, reason=reason, force=True)).items():
                counts[k] = counts.get(k, 0) + v
        return counts

    async def _retry(
        self, prefix: str, ids: list[tuple[str, int]], *, reason: str, force: bool
    ) -> dict[str, int]:
        if not ids:
            return {}
        t = self.timing
        args: list[Any] = [
            reason,
            "1" if force else "0",
            t.retention_ms,
            t.dlq_max_len,
            t.dead_keep_ms,
        ]
        for mid, attempt in ids:
            delay = backoff_seconds(
                max(attempt, 1), base=t.retry_base_seconds, cap=t.retry_max_seconds
            )
            args += [mid, int(delay * 1000)]
        res = await self.scripts.retry(keys=[prefix], args=args)
        counts: dict[str, int] = {}
        for (mid, _), code in zip(ids, res, strict=True):
            c = _s(code)
            counts[c] = counts.get(c, 0) + 1
            if c != "skip":
                RETRIED.labels(c, reason).inc()
                if c == "dead":
                    DEAD.labels(reason).inc()
                log.info("message %s %s (%s)", mid, c, reason, extra={"message_id": mid})
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
        sec, usec = await self.redis.time()
        cutoff = int(sec) * 1000 + int(usec) // 1000 - self.timing.heartbeat_timeout_ms
        seen = await self.redis.zmscore(self.keyspace.nodes, sorted({n for n, _ in targets}))
        alive = {
            n
            for n, ms in zip(sorted({n for n, _ in targets}), seen, strict=True)
            if ms is not None and ms > cutoff
        }
        alive.discard(own_node or "")
        dead = [f"{n}|{c}" for n, c in targets if n not in alive]
        if dead:
            await self.redis.zrem(self.keyspace.user(user_id, "conns"), *dead)
        return len(dead)

    async def promote(self, partition: int, *, limit: int = 500) -> tuple[int, int]:
        """Queue delayed messages that are due; returns (moved, next due ms or -1)."""
        moved, nxt = await self.scripts.promote(
            keys=[self.keyspace.part(partition)], args=[limit, self.timing.retention_ms]
        )
        return int(moved), int(float(nxt))

    async def expire_parked(self, partition: int, *, limit: int = 500) -> int:
        return int(
            await self.scripts.expire(
                keys=[self.keyspace.part(partition)], args=[limit, self.timing.retention_ms]
            )
        )

    async def sweep(self, partitions: Sequence[int], *, limit: int = 500) -> dict[str, int]:
        """The scheduler's pass over many partitions: ``promote``, ``due`` and ``expire``
        of all of them in one pipelined round trip, then the retries of the messages
        that were due (one ``retry`` call per partition that has any). Returns counts:
        promoted, expired and the retry outcomes (see :meth:`retry_due`)."""
        t = self.timing
        calls: list[Call] = []
        for p in partitions:
            prefix = [self.keyspace.part(p)]
            calls += [
                (self.scripts.promote, prefix, [limit, t.retention_ms]),
                (self.scripts.due, prefix, [limit]),
                (self.scripts.expire, prefix, [limit, t.retention_ms]),
            ]
        results = await self.scripts.pipelined(calls, self.redis)
        done = {"promoted": 0, "expired": 0}
        for k, p in enumerate(partitions):
            (moved, _), flat, expired = results[3 * k : 3 * k + 3]
            done["promoted"] += int(moved)
            done["expired"] += int(expired)
            ids = [(_s(flat[i]), int(flat[i + 1])) for i in range(0, len(flat), 3)]
            retried = await self._retry(
                self.keyspace.part(p), ids, reason="ack_timeout", force=False
            )
            for result, n in retried.items():
                done[result] = done.get(result, 0) + n
        return done

    # -- edge --------------------------------------------------------------------------
    async def ack(
        self, *, user_id: str, conn_id: str, node_id: str, message_ids: Sequence[str]
    ) -> dict[str, str]:
        """Acknowledge messages for a user; returns a code per id (see ``ack.lua``)."""
        (codes,) = await self.ack_many([AckRequest(user_id, conn_id, node_id, message_ids)])
        return codes

    async def ack_many(self, requests: Sequence[AckRequest]) -> list[dict[str, str]]:
        """Several acks (of any users) in one pipelined round trip, one script call each."""
        t = self.timing
        plans: list[tuple[dict[str, str], list[str]]] = []
        by_part: dict[str, list[int]] = {}  # partition prefix -> indexes of its requests
        for k, req in enumerate(requests):
            codes, ids = self._ack_ids(req.user_id, req.message_ids)
            plans.append((codes, ids))
            if ids:
                by_part.setdefault(self.keyspace.part_of_user(req.user_id), []).append(k)
        if not by_part:
            return [codes for codes, _ in plans]
        calls: list[Call] = []
        for prefix, ks in by_part.items():  # one script call per partition
            args: list[Any] = [t.retention_ms, t.latency_samples]
            for k in ks:
                req, ids = requests[k], plans[k][1]
                args += [req.user_id, req.conn_id, req.node_id, len(ids), *ids]
            calls.append((self.scripts.ack_many, [prefix], args))
        results = await self.scripts.pipelined(calls, self.redis)
        for ks, res in zip(by_part.values(), results, strict=True):
            pos = 0
            for k in ks:
                codes, ids = plans[k]
                self._ack_codes(requests[k], codes, ids, res[pos : pos + len(ids)])
                pos += len(ids)
        return [codes for codes, _ in plans]

    def _ack_ids(
        self, user_id: str, message_ids: Sequence[str]
    ) -> tuple[dict[str, str], list[str]]:
        """Codes for ids that cannot be this user's, and the ids left to ask Redis about."""
        codes: dict[str, str] = {}
        mine = self.keyspace.partition_of(user_id)
        ids = []
        for mid in message_ids:
            try:
                part = partition_from_id(mid)
            except ValueError:
                codes[mid] = "unknown"
                continue
            if part != mine:  # another user's message lives elsewhere: never ours
                codes[mid] = "unknown"
                continue
            ids.append(mid)
        return codes, ids

    @staticmethod
    def _ack_codes(req: AckRequest, codes: dict[str, str], ids: list[str], res: Any) -> None:
        for mid, raw in zip(ids, res, strict=True):
            code, _, rest = _s(raw).partition("|")
            codes[mid] = code
            if code == "ok":
                prio, _, latency = rest.partition("|")
                DELIVERED.labels(prio).inc()
                DELIVER_SECONDS.observe(int(latency) / 1000)
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
        res = await self.scripts.unpark(
            keys=[self.keyspace.part_of_user(user_id)],
            args=[
                user_id,
                f"{node_id}|{conn_id}",
                limit,
                self.timing.ack_timeout_ms,
                self.timing.retention_ms,
            ],
        )
        pushes = []
        for i in range(1, len(res), 8):
            mid, attempt, prio, payload, created, ck, tp, rr = res[i : i + 8]
            pushes.append(
                Push(
                    id=_s(mid),
                    user_id=user_id,
                    priority=_s(prio),
                    attempt=int(attempt),
                    payload_json=payload,
                    created_ms=int(created),
                    collapse_key=_s(ck) or None,
                    topic=_s(tp) or None,
                    reply_requested=_s(rr) == "1",
                    targets=((node_id, conn_id),),
                )
            )
            _first_push(pushes[-1])
        return int(res[0]), pushes

    async def reply(self, *, user_id: str, conn_id: str, message_id: str, data: bytes) -> str:
        """Record a user's answer to a message that asked for one (see ``reply.lua``)."""
        try:
            if partition_from_id(message_id) != self.keyspace.partition_of(user_id):
                return "unknown"
        except ValueError:
            return "unknown"
        return _s(
            await self.scripts.reply(
                keys=[self.keyspace.part_of_user(user_id)],
                args=[
                    user_id,
                    conn_id,
                    message_id,
                    data,
                    self.keyspace.replies_channel(message_id),
                    self.timing.retention_ms,
                ],
            )
        )

    async def request_cancel(self, *, user_id: str, task_id: str) -> str:
        """A user asks the producer of one of their tasks to cancel it ('ok' or 'unknown')."""
        return _s(
            await self.scripts.cancel(
                keys=[self.keyspace.part_of_user(user_id)],
                args=[user_id, task_id, self.keyspace.cancel_channel(task_id)],
            )
        )

    # -- operators -----------------------------------------------------------------------
    async def get(self, message_id: str) -> Message:
        try:
            key = self.keyspace.msg(message_id)
        except ValueError:
            raise NotFound(f"no message {message_id!r}") from None
        h: dict[bytes, bytes] = await self.redis.hgetall(key)  # type: ignore[assignment]
        if not h:
            raise NotFound(f"no message {message_id!r} (unknown, or its retention ended)")
        return Message.from_hash(h)

    async def replay(self, message_id: str, *, by: str = "operator") -> str:
        res = _s(
            await self.scripts.replay(
                keys=[self._prefix(message_id)], args=[message_id, self.timing.retention_ms, by]
            )
        )
        if res == "unknown":
            raise NotFound(f"no message {message_id!r}")
        if res != "queued":
            raise Conflict(f"message {message_id} is {res}, not dead; nothing replayed")
        log.info("message %s replayed by %s", message_id, by, extra={"message_id": message_id})
        return res

    async def purge(self, message_id: str) -> None:
        res = _s(await self.scripts.purge(keys=[self._prefix(message_id)], args=[message_id]))
        if res == "unknown":
            raise NotFound(f"no message {message_id!r}")
        if res != "purged":
            raise Conflict(f"message {message_id} is {res}, not in the dead-letter stream")

    def _prefix(self, message_id: str) -> str:
        try:
            return self.keyspace.part_of_message(message_id)
        except ValueError:
            raise NotFound(f"no message {message_id!r}") from None
