"""Operators' HTTP API for webhooks and events (admin role on every route): the
endpoints (those of ``COURIER_WEBHOOKS`` are read-only here), each with its status, the
dead webhook deliveries (replay, purge), and the newest lifecycle events."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Query
from pydantic import BaseModel, ConfigDict

from delivery.events import EventLog, EventType
from delivery.exceptions import ValidationError
from delivery.queries import MAX_PAGE
from delivery.webhook_store import WebhookStore
from delivery.webhooks import endpoint_from, new_secret

from . import docs
from .auth import Principal
from .deps import admin, runtime
from .responses import OrjsonResponse
from .runtime import Runtime

router = APIRouter(prefix="/v1", tags=["webhooks"])


ENDPOINT = {
    "id": "crm",
    "url": "https://crm.example.com/courier",
    "events": ["delivered", "undelivered"],
    "service": "crm",
    "timeout_seconds": None,
    "max_in_flight": None,
    "enabled": True,
    "source": "api",
    "state": "ok",
    "pending": 0,
    "dead_letters": 0,
    "attempts": 12,
    "delivered": 12,
    "failed": 0,
    "dead": 0,
    "consecutive_failures": 0,
    "last_result": "HTTP 204",
    "last_error": None,
    "last_latency_ms": 31,
    "last_success_at": "2026-11-25T18:52:05.878Z",
    "last_failure_at": None,
}


class EndpointIn(BaseModel):
    """An endpoint as the admin API takes it (``secret`` made here when left out)."""

    model_config = ConfigDict(extra="forbid")

    url: str
    secret: str | None = None
    events: list[str] | str | None = None  # None or "*": every type
    service: str | None = None
    timeout_seconds: float | None = None
    max_in_flight: int | None = None
    enabled: bool = True


class Replay(BaseModel):
    model_config = ConfigDict(extra="forbid")
    event_ids: list[str] | None = None  # None: all of the endpoint's


def _store(rt: Runtime) -> WebhookStore:
    return rt.webhooks


@router.get("/webhooks", response_class=OrjsonResponse, responses=docs.errors(*docs.AUTH, 503))
async def list_endpoints(_: Principal = Depends(admin), rt: Runtime = Depends(runtime)) -> Any:
    """Every endpoint (settings, then admin API) with its state, jobs waiting, dead
    letters, counters and last result."""
    store = _store(rt)
    return OrjsonResponse({"endpoints": [await store.status(ep) for ep in await store.endpoints()]})


@router.put(
    "/webhooks/{endpoint_id}",
    response_class=OrjsonResponse,
    responses={
        **docs.ok(201, "Added (with the secret made here, if none was given).", ENDPOINT),
        **docs.ok(200, "Replaced.", ENDPOINT),
        **docs.errors(*docs.AUTH, *docs.BODY, 409, 503),
    },
)
async def put_endpoint(
    endpoint_id: str,
    ep: EndpointIn,
    _: Principal = Depends(admin),
    rt: Runtime = Depends(runtime),
) -> Any:
    """Add (201) or replace (200) an endpoint. The answer holds the secret when this
    call made it (keep it: it is not shown again)."""
    data = ep.model_dump(exclude_none=True)
    made = "secret" not in data
    data.update(id=endpoint_id, secret=data.get("secret") or new_secret())
    endpoint = endpoint_from(data, source="api")  # ValidationError: 422, nothing written
    created = await _store(rt).put(endpoint)
    out = await _store(rt).status(endpoint)
    if made:
        out["secret"] = endpoint.secret
    return OrjsonResponse(out, status_code=201 if created else 200)


@router.get(
    "/webhooks/{endpoint_id}",
    response_class=OrjsonResponse,
    responses={
        **docs.ok(200, "The endpoint's status.", ENDPOINT),
        **docs.errors(*docs.AUTH, 404, 503),
    },
)
async def get_endpoint(
    endpoint_id: str, _: Principal = Depends(admin), rt: Runtime = Depends(runtime)
) -> Any:
    """One endpoint's status."""
    store = _store(rt)
    return OrjsonResponse(await store.status(await store.get(endpoint_id)))


@router.delete(
    "/webhooks/{endpoint_id}",
    response_class=OrjsonResponse,
    responses=docs.errors(*docs.AUTH, 404, 409, 503),
)
async def delete_endpoint(
    endpoint_id: str, _: Principal = Depends(admin), rt: Runtime = Depends(runtime)
) -> Any:
    """Remove an admin-API endpoint with its waiting deliveries (409 for one of the
    settings)."""
    await _store(rt).delete(endpoint_id)
    return OrjsonResponse({"id": endpoint_id, "deleted": True})


@router.get(
    "/webhooks/{endpoint_id}/dead-letters",
    response_class=OrjsonResponse,
    responses=docs.errors(*docs.AUTH, 404, 422, 503),
)
async def endpoint_dead_letters(
    endpoint_id: str,
    limit: int = Query(50, ge=1, le=MAX_PAGE),
    _: Principal = Depends(admin),
    rt: Runtime = Depends(runtime),
) -> Any:
    """Deliveries that used up their attempts, newest first, with the last error."""
    store = _store(rt)
    await store.get(endpoint_id)
    return OrjsonResponse(
        {
            "endpoint": endpoint_id,
            "dead_letters": await store.dead_letters(endpoint_id, limit=limit),
        }
    )


@router.post(
    "/webhooks/{endpoint_id}/dead-letters/replay",
    status_code=202,
    response_class=OrjsonResponse,
    responses=docs.errors(*docs.AUTH, *docs.BODY, 404, 503),
)
async def replay_dead_letters(
    endpoint_id: str,
    body: Replay | None = Body(None),
    _: Principal = Depends(admin),
    rt: Runtime = Depends(runtime),
) -> Any:
    """A fresh cycle of attempts, due now, for the endpoint's dead deliveries (all, or
    ``event_ids``)."""
    ids = body.event_ids if body is not None else None
    n = await _store(rt).replay(endpoint_id, ids)
    return OrjsonResponse({"endpoint": endpoint_id, "replayed": n}, status_code=202)


@router.delete(
    "/webhooks/{endpoint_id}/dead-letters",
    response_class=OrjsonResponse,
    responses=docs.errors(*docs.AUTH, 404, 422, 503),
)
async def purge_dead_letters(
    endpoint_id: str,
    event_id: list[str] | None = Query(None, description="only these events"),
    _: Principal = Depends(admin),
    rt: Runtime = Depends(runtime),
) -> Any:
    """Drop the endpoint's dead deliveries (all, or those events)."""
    return OrjsonResponse(
        {"endpoint": endpoint_id, "purged": await _store(rt).purge(endpoint_id, event_id)}
    )


@router.get("/events", response_class=OrjsonResponse, responses=docs.errors(*docs.AUTH, 422, 503))
async def recent_events(
    user_id: list[str] | None = Query(None, description="only these users' events"),
    type: list[EventType] | None = Query(None, description="only these event types"),
    before: str | None = Query(None, description="older than this event id (the next page)"),
    limit: int = Query(50, ge=1, le=MAX_PAGE),
    _: Principal = Depends(admin),
    rt: Runtime = Depends(runtime),
) -> Any:
    """The newest lifecycle events of every partition, newest first."""
    log = EventLog(rt.redis, keyspace=rt.keyspace)
    try:
        events = await log.recent(limit=limit, types=type, users=user_id, before=before)
    except ValueError as e:
        raise ValidationError(f"before: {e}") from None
    return OrjsonResponse(
        {
            "events": [e.to_json() for e in events],
            "next_before": events[-1].id if len(events) == limit else None,
        }
    )
