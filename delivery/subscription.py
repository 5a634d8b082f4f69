"""``producer.events(...)``: the events of every partition as an async iterator, shared
with the other consumers of a group, at least once.

::

    async with producer.events("billing", types={"delivered", "undelivered"}) as events:
        async for event in events:
            await handle(event)  # acked once the loop asks for the next ones

An event counts as handled once the loop asks for the next one; handled events are
acked together (one round trip) before the next read and when the ``async with`` block
ends, whether it ends normally or by an error (then the event whose body raised is not
acked). An event whose body raised, or that a consumer killed mid-way had read, stays
pending and goes to a consumer of the group again after ``claim_idle_seconds``: handle
events idempotently, by ``event.id``. Events the filter
does not want are acked at once (for this group only; other groups see them).
"""

from __future__ import annotations

import os
import secrets
import socket
from collections import deque
from collections.abc import Iterable
from types import TracebackType

import redis.asyncio as aioredis

from . import clock
from .events import EventFilter, EventGroup, LifecycleEvent
from .keys import Keyspace


def consumer_name() -> str:
    """A name unique to this process (and this subscription)."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class EventSubscription:
    """The iterator ``producer.events`` returns (also an async context manager)."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        keyspace: Keyspace,
        group: str,
        consumer: str | None = None,
        types: str | Iterable[str] | None = None,
        users: Iterable[str] | None = None,
        start: str = "$",
        auto_ack: bool = True,
        count: int = 100,
        block_seconds: float = 1.0,
        claim_idle_seconds: float = 60.0,
    ) -> None:
        self.filter = EventFilter.of(types, users)
        self.group = EventGroup(
            client,
            keyspace=keyspace,
            group=group,
            consumer=consumer or consumer_name(),
            start=start,
            claim_idle_ms=int(claim_idle_seconds * 1000),
        )
        self.auto_ack = auto_ack
        self.count = count
        self.block_ms = max(int(block_seconds * 1000), 1)
        self.claim_every = max(claim_idle_seconds / 2, 0.05)
        self._buffer: deque[LifecycleEvent] = deque()
        self._handed: list[LifecycleEvent] = []  # given out, not acked yet
        self._ready = False
        self._next_claim = 0.0
        self._closed = False

    async def __aenter__(self) -> EventSubscription:
        await self._start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.auto_ack:
            if exc is not None and self._handed:  # the last one's body raised: keep it
                self._handed.pop()
            await self._ack_handed()
        self._closed = True

    def __aiter__(self) -> EventSubscription:
        return self

    async def __anext__(self) -> LifecycleEvent:
        if self._closed:
            raise StopAsyncIteration
        await self._start()
        if not self._buffer:
            if self.auto_ack:
                await self._ack_handed()
            await self._fill()
        e = self._buffer.popleft()
        self._handed.append(e)
        return e

    async def ack(self, *events: LifecycleEvent) -> int:
        """Ack events by hand (with ``auto_ack=False``)."""
        done = {e.id for e in events}
        self._handed = [e for e in self._handed if e.id not in done]
        return await self.group.ack(events)

    async def _start(self) -> None:
        if self._ready:
            return
        await self.group.ensure()
        self._buffer.extend(await self.group.own_pending(count=self.count))
        self._ready = True

    async def _ack_handed(self) -> None:
        if self._handed:
            await self.group.ack(self._handed)
            self._handed = []

    async def _fill(self) -> None:
        """Read until some wanted event is there: reclaimed ones first (now and then),
        then new ones; unwanted ones are acked on the way."""
        while not self._buffer:
            got: list[LifecycleEvent] = []
            if clock.monotonic() >= self._next_claim:
                got = await self.group.reclaim(count=self.count)
                self._next_claim = clock.monotonic() + self.claim_every
            if not got:
                got = await self.group.read(count=self.count, block_ms=self.block_ms)
            unwanted = [e for e in got if not self.filter(e)]
            if unwanted:
                await self.group.ack(unwanted)
            self._buffer.extend(e for e in got if self.filter(e))
