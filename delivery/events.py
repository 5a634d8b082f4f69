"""Lifecycle events: what became of a message, told to the producer.

Every change a producer cares about (:class:`EventType`) is appended to its partition's
bounded events stream (key ``events``, fields :class:`delivery.fields.EventField`) by
the very script that makes the change, so no event is lost or invented when a process
dies. An event's id is ``<partition>:<stream entry id>``: stable (the same every time
the event is read) and unique in the deployment, the key receivers dedupe by.

Readers, each for its audience:

- :class:`EventGroup`: a consumer group over every partition's stream (several
  processes share the events, each once, at least once; entries a dead consumer read
  are reclaimed); :meth:`delivery.producer.Producer.events` and the webhook dispatcher
  use it.
- :class:`EventLog`: the newest events and a live tail, filtered by user and type,
  without a group (the admin console).
- :mod:`delivery.waits`: ``producer.wait`` for one message.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from .exceptions import ValidationError
from .fields import EventField
from .keys import Keyspace
from .message import iso_ms
from .redis_clients import is_cluster
from .text import text


class EventType(StrEnum):
    DELIVERED = "delivered"  # a device acked it (or replied): connection, latency
    PARKED = "parked"  # its user had no device online: it waits for one
    EXPIRED = "expired"  # its ttl (or park time) ran out before any device acked it
    DEAD = "dead"  # its attempts are used up: in the dead-letter stream
    REPLIED = "replied"  # the user answered a message that asked for a reply
    CANCELLED = "cancelled"  # a newer message with the same collapse key replaced it
    UNDELIVERED = "undelivered"  # not acked escalate_after_seconds after enqueue


FINAL_EVENTS = frozenset(
    {EventType.DELIVERED, EventType.EXPIRED, EventType.DEAD, EventType.CANCELLED}
)
"""After one of these nothing else happens to a message (an operator's replay aside)."""


def event_types(names: str | Iterable[str] | None) -> frozenset[EventType] | None:
    """Event types from names (``"*"`` or None: all); :class:`ValidationError` names an
    unknown one."""
    if names is None:
        return None
    items = [names] if isinstance(names, str) else list(names)
    if "*" in items:
        return None
    out = set()
    for n in items:
        try:
            out.add(EventType(n))
        except ValueError:
            known = ", ".join(t.value for t in EventType)
            raise ValidationError(f"unknown event type {n!r}; known: {known}") from None
    return frozenset(out)


def event_id(partition: int, entry_id: str) -> str:
    return f"{partition}:{entry_id}"


def split_event_id(eid: str) -> tuple[int, str]:
    """(partition, stream entry id) of an event id; ValueError when it is not one."""
    head, sep, entry = eid.partition(":")
    ms, dash, seq = entry.partition("-")
    if not (sep and head.isdigit() and dash and ms.isdigit() and seq.isdigit()):
        raise ValueError(f"not an event id: {eid!r}")
    return int(head), entry


def _entry_order(eid: str) -> tuple[int, int, int]:
    p, entry = split_event_id(eid)
    ms, _, seq = entry.partition("-")
    return int(ms), int(seq), p


# stream fields -> the keys of an event's `data` (those not named here are not shown)
_DATA: dict[str, str] = {
    EventField.CONN: "conn",
    EventField.NODE: "node",
    EventField.REASON: "reason",
    EventField.BY: "by",
    EventField.STATUS: "status",
}
_DATA_INT: dict[str, str] = {
    EventField.LATENCY: "latency_ms",
    EventField.AFTER: "escalate_after_ms",
}


@dataclass(frozen=True, slots=True)
class LifecycleEvent:
    """One event, as every reader gives it."""

    id: str  # <partition>:<entry id>
    type: EventType
    message_id: str
    user_id: str
    at_ms: int  # server time of the change
    attempt: int
    data: dict[str, Any] = field(default_factory=dict)  # what depends on the type

    @property
    def partition(self) -> int:
        return split_event_id(self.id)[0]

    @property
    def entry_id(self) -> str:
        return split_event_id(self.id)[1]

    @classmethod
    def from_entry(cls, partition: int, entry_id: Any, fields: dict[Any, Any]) -> LifecycleEvent:
        f = {text(k): v for k, v in fields.items() if v not in (b"", "")}
        data: dict[str, Any] = {}
        for name, key in _DATA.items():
            if name in f:
                data[key] = text(f[name])
        for name, key in _DATA_INT.items():
            if name in f:
                data[key] = int(f[name])
        if EventField.UNTIL in f:
            data["parked_until"] = iso_ms(int(f[EventField.UNTIL]))
        if EventField.REPLY in f:
            data["reply"] = orjson.loads(f[EventField.REPLY])
        return cls(
            id=event_id(partition, text(entry_id)),
            type=EventType(text(f[EventField.TYPE])),
            message_id=text(f[EventField.MESSAGE]),
            user_id=text(f[EventField.USER]),
            at_ms=int(f[EventField.AT]),
            attempt=int(f.get(EventField.ATTEMPT) or 0),
            data=data,
        )

    def to_json(self) -> dict[str, Any]:
        """The event as webhooks, the HTTP API and ``producer.events`` show it: the
        Standard Webhooks payload shape (``type``, ``timestamp``, ``data``) plus its id."""
        return {
            "id": self.id,
            "type": self.type.value,
            "timestamp": iso_ms(self.at_ms),
            "data": {
                "message_id": self.message_id,
                "user_id": self.user_id,
                "attempt": self.attempt,
                **self.data,
            },
        }

    def body(self) -> bytes:
        return orjson.dumps(self.to_json())


@dataclass(frozen=True)
class EventFilter:
    """Which events a reader wants: types (None: all) and users (None: all)."""

    types: frozenset[EventType] | None = None
    users: frozenset[str] | None = None

    @classmethod
    def of(
        cls, types: str | Iterable[str] | None = None, users: Iterable[str] | None = None
    ) -> EventFilter:
        return cls(event_types(types), None if users is None else frozenset(users))

    def __call__(self, e: LifecycleEvent) -> bool:
        return (self.types is None or e.type in self.types) and (
            self.users is None or e.user_id in self.users
        )

    def partitions(self, keyspace: Keyspace) -> list[int]:
        """The partitions that can hold such events (a user's live in one)."""
        if self.users is None:
            return list(range(keyspace.partitions))
        return sorted({keyspace.partition_of(u) for u in self.users})


def share(block_ms: int | None, groups: int) -> int | None:
    """Each of ``groups`` blocking reads in turn waits this long, so that a round over
    all of them takes ``block_ms`` (Redis Cluster: one read per partition)."""
    return None if block_ms is None else max(block_ms // max(groups, 1), 10)


def slot_groups(client: Any, partitions: Sequence[int]) -> list[list[int]]:
    """Partitions one multi-stream read may take: all on one server, one each on Redis
    Cluster (each partition's keys have a slot of their own)."""
    if is_cluster(client):
        return [[p] for p in partitions]
    return [list(partitions)] if partitions else []


def _rows(reply: Any) -> Any:
    """(stream, entries) pairs of a read's reply (RESP2 list or RESP3 dict)."""
    return reply.items() if isinstance(reply, dict) else (reply or [])


def parse_read(keyspace: Keyspace, reply: Any, streams: dict[str, int]) -> list[LifecycleEvent]:
    """XREAD / XREADGROUP replies (RESP2 list or RESP3 dict) as events; entries trimmed
    away while pending come back without fields and are left out."""
    out = []
    for stream, entries in _rows(reply):
        p = streams[text(stream)]
        for entry_id, fields in entries:
            if fields:
                out.append(LifecycleEvent.from_entry(p, entry_id, fields))
    return out


class EventGroup:
    """A consumer group over the events streams of some partitions (default: all).

    Entries are handed to one consumer of the group each; they stay pending until
    :meth:`ack`, and :meth:`reclaim` takes over those another consumer read and did not
    ack within ``claim_idle_ms`` (it died, or hangs)."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        keyspace: Keyspace,
        group: str,
        consumer: str,
        partitions: Sequence[int] | None = None,
        start: str = "$",
        claim_idle_ms: int = 60_000,
    ) -> None:
        if not group or any(c.isspace() for c in group):
            raise ValidationError(f"a consumer group name is a word, not {group!r}")
        self.redis = client
        self.keyspace = keyspace
        self.group = group
        self.consumer = consumer
        self.partitions = list(range(keyspace.partitions) if partitions is None else partitions)
        self.start = start
        self.claim_idle_ms = claim_idle_ms
        self._streams = {keyspace.events(p): p for p in self.partitions}
        self._claim_from = dict.fromkeys(self.partitions, "0-0")
        self._skipped: dict[str, Any] = {}  # stream -> the entry id skip_to_end moved to

    async def ensure(self) -> None:
        """Create the group on every stream (idempotent). A new group starts at ``start``:
        ``$`` (events from now on) or ``0`` (every event the stream still holds)."""
        for stream in self._streams:
            try:
                await self.redis.xgroup_create(stream, self.group, id=self.start, mkstream=True)
            except ResponseError as e:
                if "BUSYGROUP" not in str(e):
                    raise

    async def read(self, *, count: int = 100, block_ms: int | None = 1000) -> list[LifecycleEvent]:
        """New events for this consumer (one blocking read per slot group)."""
        out: list[LifecycleEvent] = []
        for reply in await self._read_new(count, block_ms):
            out += parse_read(self.keyspace, reply, self._streams)
        return out

    async def read_raw(
        self, *, count: int = 100, block_ms: int | None = 1000
    ) -> list[tuple[int, str, dict[Any, Any]]]:
        """:meth:`read`, unparsed: (partition, entry id, fields) of each new event, for
        a consumer that parses only what it needs (:meth:`LifecycleEvent.from_entry`)."""
        out: list[tuple[int, str, dict[Any, Any]]] = []
        for reply in await self._read_new(count, block_ms):
            for stream, entries in _rows(reply):
                p = self._streams[text(stream)]
                out += [(p, text(entry_id), fields) for entry_id, fields in entries if fields]
        return out

    async def skip_to_end(self) -> None:
        """Move the group past every event there is now, reading none (``XGROUP SETID``
        to the newest entry's id): for a consumer that would only ack them. A stream
        that has not grown since this group was last moved here gets no command that
        writes (an idle deployment writes nothing to the AOF for it). What its consumers
        read before stays pending; the lag shows as unknown until the next read."""
        streams = list(self._streams)
        if is_cluster(self.redis):  # one stream per slot: one command each
            newest = [await self.redis.xrevrange(s, count=1) for s in streams]
        else:
            pipe = self.redis.pipeline(transaction=False)
            for stream in streams:
                pipe.xrevrange(stream, count=1)
            newest = await pipe.execute()
        moves: list[tuple[str, Any]] = []
        for stream, rows in zip(streams, newest, strict=True):
            entry_id: Any = rows[0][0] if rows else None
            if entry_id is not None and self._skipped.get(stream) != entry_id:
                moves.append((stream, entry_id))
        for stream, entry_id in moves:
            await self.redis.xgroup_setid(stream, self.group, entry_id)
            self._skipped[stream] = entry_id

    async def _read_new(self, count: int, block_ms: int | None) -> list[Any]:
        """The replies of one read per slot group; once one brought events, the others
        only for what they have now (no blocking)."""
        replies = []
        groups = slot_groups(self.redis, self.partitions)
        block_ms = share(block_ms, len(groups))
        for parts in groups:
            streams: dict[Any, Any] = {self.keyspace.events(p): ">" for p in parts}
            reply = await self.redis.xreadgroup(
                self.group, self.consumer, streams, count=count, block=block_ms
            )
            replies.append(reply)
            if any(fields for _, entries in _rows(reply) for _, fields in entries):
                block_ms = None
        return replies

    async def own_pending(self, *, count: int = 100) -> list[LifecycleEvent]:
        """What this consumer read earlier and never acked (a restart with the same name)."""
        out: list[LifecycleEvent] = []
        for parts in slot_groups(self.redis, self.partitions):
            part = {self.keyspace.events(p): "0" for p in parts}
            reply = await self.redis.xreadgroup(self.group, self.consumer, part, count=count)  # type: ignore[arg-type]
            out += parse_read(self.keyspace, reply, self._streams)
        return out

    async def reclaim(self, *, count: int = 100) -> list[LifecycleEvent]:
        """Take over events other consumers read more than ``claim_idle_ms`` ago and never
        acked; trimmed ones are dropped from the pending list by XAUTOCLAIM itself."""
        out: list[LifecycleEvent] = []
        for p in self.partitions:
            reply = await self.redis.xautoclaim(
                self.keyspace.events(p),
                self.group,
                self.consumer,
                self.claim_idle_ms,
                start_id=self._claim_from[p],
                count=count,
            )
            self._claim_from[p] = text(reply[0])
            out += [LifecycleEvent.from_entry(p, e, f) for e, f in reply[1] if f]
        return out

    async def ack(self, events: Iterable[LifecycleEvent]) -> int:
        by_stream: dict[str, list[str]] = {}
        for e in events:
            by_stream.setdefault(self.keyspace.events(e.partition), []).append(e.entry_id)
        if not by_stream:
            return 0
        pipe = self.redis.pipeline(transaction=False)
        for stream, ids in by_stream.items():
            pipe.xack(stream, self.group, *ids)
        return sum(await pipe.execute())


class EventLog:
    """Reading the events without a group: the newest, and a live tail (for operators;
    nothing is acked, every reader sees everything)."""

    def __init__(self, client: aioredis.Redis, *, keyspace: Keyspace) -> None:
        self.redis = client
        self.keyspace = keyspace

    async def recent(
        self,
        *,
        limit: int = 100,
        types: str | Iterable[str] | None = None,
        users: Iterable[str] | None = None,
        before: str | None = None,
        scan: int = 10_000,
    ) -> list[LifecycleEvent]:
        """The newest ``limit`` events that match, newest first, older than the event id
        ``before`` when given; looks at most ``scan`` entries per partition."""
        want = EventFilter.of(types, users)
        found: list[LifecycleEvent] = []
        for p in want.partitions(self.keyspace):
            found += await self._recent_in(p, want, limit, before, scan)
        found.sort(key=lambda e: _entry_order(e.id), reverse=True)
        return found[:limit]

    async def _recent_in(
        self, p: int, want: EventFilter, limit: int, before: str | None, scan: int
    ) -> list[LifecycleEvent]:
        stream = self.keyspace.events(p)
        top = "+"
        if before is not None:  # older in the order (ms, seq, partition) of recent()
            bp, entry = split_event_id(before)
            top = entry if p < bp else f"({entry}"
        out: list[LifecycleEvent] = []
        seen = 0
        while len(out) < limit and seen < scan:
            rows: Any = await self.redis.xrevrange(
                stream, max=top, min="-", count=min(500, scan - seen)
            )
            if not rows:
                break
            seen += len(rows)
            out += [e for e in (LifecycleEvent.from_entry(p, i, f) for i, f in rows) if want(e)]
            top = f"({text(rows[-1][0])}"
        return out[:limit]

    async def tail(
        self,
        *,
        types: str | Iterable[str] | None = None,
        users: Iterable[str] | None = None,
        after: str | None = None,
        block_ms: int = 1000,
    ) -> AsyncIterator[LifecycleEvent]:
        """Events as they happen, oldest first in each partition, until the caller stops:
        from now on, or after the event id ``after`` (a reader that reconnects; every
        partition is read from that event's time on). ValueError: not an event id."""
        want = EventFilter.of(types, users)
        parts = want.partitions(self.keyspace)
        start = None if after is None else split_event_id(after)[1]
        cursors = {
            self.keyspace.events(p): start if start is not None else await self._last_id(p)
            for p in parts
        }
        streams = {self.keyspace.events(p): p for p in parts}
        groups = slot_groups(self.redis, parts)
        block = share(block_ms, len(groups))
        while True:
            for group in groups:
                keys = {self.keyspace.events(p): cursors[self.keyspace.events(p)] for p in group}
                reply = await self.redis.xread(keys, count=500, block=block)  # type: ignore[arg-type]
                for stream, entries in reply.items() if isinstance(reply, dict) else reply or []:
                    if entries:
                        cursors[text(stream)] = text(entries[-1][0])
                for e in parse_read(self.keyspace, reply, streams):
                    if want(e):
                        yield e

    async def _last_id(self, p: int) -> str:
        return await last_entry_id(self.redis, self.keyspace.events(p))


async def last_entry_id(client: Any, stream: str) -> str:
    """The newest entry id of a stream, ``0-0`` when it is empty or missing (a read
    from it returns exactly what is added afterwards)."""
    rows = await client.xrevrange(stream, count=1)
    return text(rows[0][0]) if rows else "0-0"
