"""The live tail: lifecycle events as they happen, to operators (admin role), as
Server-Sent Events. The console's "Live tail" page reads it.

``GET /v1/events/tail?user_id=42&event=delivered&event=dead`` answers
``text/event-stream``, one SSE event per lifecycle event::

    id: 3:1718000000000-0
    event: delivered
    data: {"id": "3-8f2c...", "user_id": "42", "event": "delivered", "at": "...", ...}

``id`` is the position in the events stream (a reconnecting reader sends it back as
``Last-Event-ID`` and misses nothing the stream still holds); a comment line every
:data:`KEEPALIVE_S` keeps proxies from closing a quiet tail.

The events come from the deployment's events source (``Runtime.extras["events"]``,
an :class:`EventSource`): the per-partition lifecycle events streams
(:class:`StreamEvents`, set by the app when ``COURIER_EVENTS`` is on). With events off
there is no source, and the route answers ``409`` ``events_disabled`` after checking
the request, so the page can say so instead of showing an empty list that looks like
silence.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, Protocol

import orjson
from fastapi import APIRouter, Depends, Header, Query
from starlette.responses import StreamingResponse

from delivery import clock
from delivery.events import EventLog, event_id, split_event_id
from delivery.message import MAX_ID_LEN, iso_ms

from . import docs
from .auth import Principal
from .deps import admin, runtime
from .errors import ApiError
from .runtime import Runtime

router = APIRouter(prefix="/v1", tags=["admin"])

EVENTS = "events"  # the key of the source in Runtime.extras (set when COURIER_EVENTS)
TAIL_EVENTS = ("delivered", "parked", "expired", "dead", "replied", "cancelled", "undelivered")
"""The lifecycle events a producer cares about (and a tail may be filtered by)."""
KEEPALIVE_S = 15.0


class EventSource(Protocol):
    """Where the tail reads lifecycle events: each as ``(position, event)`` where the
    event has at least ``event`` (one of :data:`TAIL_EVENTS`), ``id`` and ``user_id``."""

    def tail(
        self, *, user_id: str | None, events: frozenset[str], after: str | None
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]: ...

    async def now(self) -> str:
        """The position of "from now on", taken when the request comes (a tail that
        starts reading later still shows what happened since)."""
        ...


class StreamEvents:
    """The :class:`EventSource` of the per-partition events streams
    (:class:`delivery.events.EventLog`); the position is the event id."""

    def __init__(self, log: EventLog) -> None:
        self.log = log

    async def now(self) -> str:
        # entry ids are Redis server ms: every partition is read from this millisecond
        ms = await clock.server_ms(self.log.redis)
        return event_id(0, f"{ms - 1}-{2**64 - 1}")

    async def tail(
        self, *, user_id: str | None, events: frozenset[str], after: str | None
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        try:
            split_event_id(after) if after is not None else None
        except ValueError:
            after = None  # not one of ours: from now on
        users = None if user_id is None else [user_id]
        async for e in self.log.tail(types=events, users=users, after=after):
            yield (
                e.id,
                {
                    "id": e.message_id,
                    "event": e.type.value,
                    "user_id": e.user_id,
                    "at": iso_ms(e.at_ms),
                    "attempt": e.attempt,
                    **e.data,
                },
            )


def sse(position: str, event: dict[str, Any]) -> bytes:
    """One Server-Sent Event (the data is one line of JSON, so no line splitting)."""
    return b"id: %s\nevent: %s\ndata: %s\n\n" % (
        position.encode(),
        str(event["event"]).encode(),
        orjson.dumps(event),
    )


async def _stream(
    source: EventSource, user_id: str | None, events: frozenset[str], after: str | None
) -> AsyncIterator[bytes]:
    it = aiter(source.tail(user_id=user_id, events=events, after=after))
    yield b": live tail\n\n"
    while True:
        try:
            position, event = await asyncio.wait_for(anext(it), KEEPALIVE_S)
        except TimeoutError:
            yield b": keep-alive\n\n"
            continue
        except StopAsyncIteration:
            return
        yield sse(position, event)


@router.get(
    "/events/tail",
    responses={
        200: {"description": "Server-Sent Events.", "content": {"text/event-stream": {}}},
        **docs.errors(*docs.AUTH, 409, 422, 503),
    },
)
async def live_tail(
    user_id: str | None = Query(None, max_length=MAX_ID_LEN, description="Only this user."),
    event: list[str] | None = Query(None, description=f"Only these: {', '.join(TAIL_EVENTS)}."),
    last_event_id: str | None = Header(None, max_length=64),
    _: Principal = Depends(admin),
    rt: Runtime = Depends(runtime),
) -> StreamingResponse:
    """Lifecycle events as they happen (SSE), optionally of one user and some events;
    ``409 events_disabled`` while the deployment records no lifecycle events."""
    unknown = sorted(set(event or ()) - set(TAIL_EVENTS))
    if unknown:
        raise ApiError(422, f"unknown event {unknown[0]!r}; one of {', '.join(TAIL_EVENTS)}")
    source: EventSource | None = rt.extras.get(EVENTS)  # type: ignore[assignment]
    if source is None:
        raise ApiError(
            409,
            "lifecycle events are not enabled on this deployment: the live tail is "
            "available once they are",
            code="events_disabled",
        )
    chosen = frozenset(event or TAIL_EVENTS)
    after = last_event_id if last_event_id is not None else await source.now()
    return StreamingResponse(
        _stream(source, user_id, chosen, after),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
