"""Operators' HTTP API (admin role on every route): a message's status and timeline,
a user's messages and statistics, the dead letters, and the deployment's stats."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Query

from delivery.dead_letters import DeadLetters
from delivery.queries import MAX_PAGE, Queries
from delivery.status import Status

from . import audit, docs
from .auth import Principal
from .deps import admin, runtime
from .responses import OrjsonResponse
from .runtime import Runtime
from .strict_json import StrictRoute

router = APIRouter(prefix="/v1", tags=["admin"], route_class=StrictRoute)


def queries(rt: Runtime) -> Queries:
    s = rt.settings
    return Queries(
        rt.redis,
        keyspace=rt.keyspace,
        heartbeat_timeout_ms=int(s.heartbeat_timeout_seconds * 1000),
        consumer_alive_ms=int(s.consumer_heartbeat_seconds * 3000),  # three beats missed
    )


def dead_letters(rt: Runtime) -> DeadLetters:
    return DeadLetters(rt.redis, keyspace=rt.keyspace, store=rt.store)


def _ms(dt: datetime | None) -> int | None:
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


@router.get(
    "/messages/{message_id}",
    response_class=OrjsonResponse,
    responses={
        **docs.ok(200, "Status and timeline.", docs.MESSAGE_VIEW),
        **docs.errors(*docs.AUTH, 404, 503),
    },
)
async def message_status(
    message_id: str, _: Principal = Depends(admin), rt: Runtime = Depends(runtime)
) -> Any:
    """Status, priority, recipient, attempts, ttl, the reply if one was requested, and the
    full timeline (each event with its time, attempt and connection/node)."""
    return OrjsonResponse(await queries(rt).message(message_id))


@router.get(
    "/users/{user_id}/messages",
    response_class=OrjsonResponse,
    responses=docs.errors(*docs.AUTH, 422, 503),
)
async def user_messages(
    user_id: str,
    status: Status | None = Query(None, description="only messages in this status"),
    since: datetime | None = Query(None, description="created at or after (ISO 8601)"),
    until: datetime | None = Query(None, description="created at or before (ISO 8601)"),
    limit: int = Query(50, ge=1, le=MAX_PAGE),
    cursor: str | None = Query(None, description="next_cursor of the previous page"),
    _: Principal = Depends(admin),
    rt: Runtime = Depends(runtime),
) -> Any:
    """A user's messages, newest first: ``{"messages": [...], "next_cursor"}``."""
    page = await queries(rt).user_messages(
        user_id,
        status=None if status is None else status.value,
        since_ms=_ms(since),
        until_ms=_ms(until),
        limit=limit,
        cursor=cursor,
    )
    return OrjsonResponse(
        {"user_id": user_id, "messages": page.items, "next_cursor": page.next_cursor}
    )


@router.get(
    "/users/{user_id}/stats", response_class=OrjsonResponse, responses=docs.errors(*docs.AUTH, 503)
)
async def user_stats(
    user_id: str, _: Principal = Depends(admin), rt: Runtime = Depends(runtime)
) -> Any:
    """Counts by status, delivery rate, mean and p95 time to ack (from when each
    message was due), devices online."""
    return OrjsonResponse(await queries(rt).user_stats(user_id))


@router.get(
    "/dead-letters", response_class=OrjsonResponse, responses=docs.errors(*docs.AUTH, 422, 503)
)
async def list_dead_letters(
    limit: int = Query(50, ge=1, le=MAX_PAGE),
    cursor: str | None = Query(None, description="next_cursor of the previous page"),
    _: Principal = Depends(admin),
    rt: Runtime = Depends(runtime),
) -> Any:
    """Dead letters of every partition, newest first, with reason and last error."""
    page = await queries(rt).dead_letters(limit=limit, cursor=cursor)
    return OrjsonResponse({"dead_letters": page.items, "next_cursor": page.next_cursor})


@router.post(
    "/dead-letters/{message_id}/replay",
    status_code=202,
    response_class=OrjsonResponse,
    responses={
        **docs.ok(202, "Queued again.", {"id": docs.MESSAGE_ID, "status": "queued"}),
        **docs.errors(*docs.AUTH, 404, 409, 503),
    },
)
async def replay_dead_letter(
    message_id: str, who: Principal = Depends(admin), rt: Runtime = Depends(runtime)
) -> Any:
    """A fresh cycle of attempts for a dead message (409 when it is not dead)."""
    status = await dead_letters(rt).replay(message_id, by=who.user_id)
    audit.record(who.user_id, "replay", message_id)
    return OrjsonResponse({"id": message_id, "status": status}, status_code=202)


@router.delete(
    "/dead-letters/{message_id}",
    response_class=OrjsonResponse,
    responses={
        **docs.ok(200, "Entry removed.", {"id": docs.MESSAGE_ID, "purged": 1}),
        **docs.errors(*docs.AUTH, 404, 409, 503),
    },
)
async def purge_dead_letter(
    message_id: str, who: Principal = Depends(admin), rt: Runtime = Depends(runtime)
) -> Any:
    """Remove one message's dead-letter entry; the message itself stays dead."""
    n = await dead_letters(rt).purge(message_id)
    audit.record(who.user_id, "purge", message_id, entries=n)
    return OrjsonResponse({"id": message_id, "purged": n})


@router.delete(
    "/dead-letters",
    response_class=OrjsonResponse,
    responses={**docs.ok(200, "Entries removed.", {"purged": 12}), **docs.errors(*docs.AUTH, 503)},
)
async def purge_all_dead_letters(
    who: Principal = Depends(admin), rt: Runtime = Depends(runtime)
) -> Any:
    """Empty the dead-letter stream of every partition."""
    n = await dead_letters(rt).purge_all()
    audit.record(who.user_id, "purge all dead letters", purged=n)
    return OrjsonResponse({"purged": n})


@router.get("/stats", response_class=OrjsonResponse, responses=docs.errors(*docs.AUTH, 503))
async def stats(_: Principal = Depends(admin), rt: Runtime = Depends(runtime)) -> Any:
    """Stream depths, pending, lag, delayed/inflight/parked, dead letters, nodes with
    their connections and users, consumers alive."""
    return OrjsonResponse(await queries(rt).stats())
