"""``producer.wait(id, until=..., timeout=...)``: until a message reaches one of some
events (or a final one), from any process, whichever node its device is on.

The message's own hash says what already happened (its status, its reply, whether it
was escalated); the partition's events stream says what happens next. A waiter takes
the stream's newest entry id *before* it reads the hash, and reads the stream from
there: an event written before that point shows in the hash, one written after it is
read. One reader task per partition serves every waiter of an asyncio producer (one
blocking connection per partition with waiters, not one per waiter). The hash is read
again every ``poll`` seconds, so a wait ends even with events off.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

import redis
import redis.asyncio as aioredis

from . import clock
from .events import FINAL_EVENTS, EventType, event_types, last_entry_id
from .exceptions import NotFound, ValidationError
from .fields import EventField, MessageField
from .keys import Keyspace, partition_from_id
from .status import Status
from .text import text

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0

# in this order: a final outcome before what happened on the way
_ORDER = (
    EventType.DELIVERED,
    EventType.EXPIRED,
    EventType.DEAD,
    EventType.CANCELLED,
    EventType.REPLIED,
    EventType.UNDELIVERED,
    EventType.PARKED,
)
_HASH_FIELDS = (MessageField.STATUS, MessageField.REPLY, MessageField.ESCALATED_AT)
_TYPE, _MESSAGE = EventField.TYPE.encode(), EventField.MESSAGE.encode()
_STATUS_EVENTS = {s.value for s in Status} & {t.value for t in EventType}


def wanted(until: str | Iterable[str]) -> frozenset[EventType]:
    """The events a wait ends on: those asked for, and the final ones."""
    types = event_types(until)
    if types is None:  # "*": anything
        return frozenset(EventType)
    if not types:
        raise ValidationError("until names no event type")
    return types | FINAL_EVENTS


def reached(row: list[Any], want: frozenset[EventType]) -> EventType | None:
    """What the message's hash (``_HASH_FIELDS``) shows it reached, of ``want``."""
    status, reply, escalated = row
    if status is None:
        return None
    s = text(status)
    seen = {EventType(s)} if s in _STATUS_EVENTS else set()
    if reply is not None:
        seen.add(EventType.REPLIED)
    if escalated is not None:
        seen.add(EventType.UNDELIVERED)
    for t in _ORDER:
        if t in seen and t in want:
            return t
    return None


def _found(entries: Any, message_id: bytes, want: frozenset[EventType]) -> EventType | None:
    for _eid, fields in entries:
        if fields and fields.get(_MESSAGE) == message_id:
            t = EventType(text(fields[_TYPE]))
            if t in want:
                return t
    return None


class Waits:
    """The waits of one asyncio producer."""

    def __init__(self, client: aioredis.Redis, *, keyspace: Keyspace, block_ms: int = 1000) -> None:
        self.redis = client
        self.keyspace = keyspace
        self.block_ms = block_ms
        # partition -> message id -> [(events wanted, future)]
        self._waiting: dict[
            int, dict[bytes, list[tuple[frozenset[EventType], asyncio.Future[EventType]]]]
        ] = {}
        self._readers: dict[int, asyncio.Task[None]] = {}
        self._cursors: dict[int, str] = {}
        self._locks: dict[int, asyncio.Lock] = {}

    async def wait(
        self,
        message_id: str,
        until: str | Iterable[str],
        timeout: float,  # noqa: ASYNC109  (a time-limited wait is the point)
    ) -> EventType | None:
        want = wanted(until)
        try:
            p = partition_from_id(message_id)
        except ValueError:
            raise NotFound(f"no message {message_id!r}") from None
        mid = message_id.encode()
        fut: asyncio.Future[EventType] = asyncio.get_running_loop().create_future()
        waiting = self._waiting.setdefault(p, {}).setdefault(mid, [])
        waiting.append((want, fut))
        try:
            await self._watch(p)
            deadline = clock.monotonic() + timeout
            while True:
                row = await self.redis.hmget(self.keyspace.msg(message_id), _HASH_FIELDS)
                if row[0] is None:
                    raise NotFound(f"no message {message_id!r} (unknown, or its retention ended)")
                got = reached(row, want)
                if got is not None:
                    return got
                left = deadline - clock.monotonic()
                if left <= 0:
                    return None
                try:
                    return await asyncio.wait_for(asyncio.shield(fut), min(left, POLL_SECONDS))
                except TimeoutError:
                    continue
        finally:
            waiting.remove((want, fut))
            if not waiting:
                self._waiting[p].pop(mid, None)

    async def _watch(self, p: int) -> None:
        """Make sure partition ``p`` has a reader whose cursor predates this call."""
        lock = self._locks.setdefault(p, asyncio.Lock())
        async with lock:
            task = self._readers.get(p)
            if task is None or task.done():
                self._cursors[p] = await last_entry_id(self.redis, self.keyspace.events(p))
                self._readers[p] = asyncio.create_task(self._read(p), name=f"wait-reader-{p}")

    async def _read(self, p: int) -> None:
        stream = self.keyspace.events(p)
        try:
            while self._waiting.get(p):
                reply = await self.redis.xread(
                    {stream: self._cursors[p]}, count=1000, block=self.block_ms
                )
                for _s, entries in reply.items() if isinstance(reply, dict) else reply or []:
                    if entries:
                        self._cursors[p] = text(entries[-1][0])
                    self._resolve(p, entries)
        except Exception:  # the waiters poll the hash meanwhile; the next wait restarts it
            log.warning("wait reader of partition %d stopped", p, exc_info=True)

    def _resolve(self, p: int, entries: Any) -> None:
        waiting = self._waiting.get(p, {})
        for _eid, fields in entries:
            mid = fields.get(_MESSAGE) if fields else None
            for want, fut in waiting.get(mid, ()) if mid else ():
                t = EventType(text(fields[_TYPE]))
                if t in want and not fut.done():
                    fut.set_result(t)

    async def aclose(self) -> None:
        for t in self._readers.values():
            t.cancel()
        await asyncio.gather(*self._readers.values(), return_exceptions=True)
        self._readers.clear()


def wait_blocking(
    client: redis.Redis,
    keyspace: Keyspace,
    message_id: str,
    until: str | Iterable[str],
    timeout: float,
) -> EventType | None:
    """:meth:`Waits.wait` for a blocking client: one connection, the message's partition."""
    want = wanted(until)
    try:
        stream = keyspace.events(partition_from_id(message_id))
    except ValueError:
        raise NotFound(f"no message {message_id!r}") from None
    rows = client.xrevrange(stream, count=1)
    cursor = text(rows[0][0]) if rows else "0-0"
    mid = message_id.encode()
    deadline = clock.monotonic() + timeout
    while True:
        row = client.hmget(keyspace.msg(message_id), _HASH_FIELDS)
        if row[0] is None:
            raise NotFound(f"no message {message_id!r} (unknown, or its retention ended)")
        got = reached(row, want)
        if got is not None:
            return got
        left = deadline - clock.monotonic()
        if left <= 0:
            return None
        block = max(int(min(left, POLL_SECONDS) * 1000), 1)
        reply = client.xread({stream: cursor}, count=1000, block=block)
        for _s, entries in reply.items() if isinstance(reply, dict) else reply or []:
            if entries:
                cursor = text(entries[-1][0])
            got = _found(entries, mid, want)
            if got is not None:
                return got
