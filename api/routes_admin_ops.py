"""Operators' actions and live numbers beyond the read-only admin API (admin role on
every route; what the console at ``/admin`` calls): disconnect a user, a user's live
connections and tasks, a test message, replay every dead letter, every process's
totals (for rates) and Redis health. Every action is logged with who did it
(:mod:`api.audit`)."""

from __future__ import annotations

import time
from typing import Any, Literal

from fastapi import APIRouter, Body, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from delivery import clock
from delivery.exceptions import NotFound
from delivery.message import MAX_ID_LEN, iso_ms
from delivery.tasks import topic_of
from delivery.totals import Totals

from . import audit, control, docs
from .auth import Principal
from .deps import admin, runtime
from .responses import OrjsonResponse
from .routes_admin import dead_letters, queries
from .runtime import Runtime

router = APIRouter(prefix="/v1", tags=["admin"])

TASK_PREFIX = topic_of("")
RECENT_TASK_MESSAGES = 200  # a user's newest messages looked at for their recent tasks


class DisconnectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    conn_id: str | None = Field(
        default=None, max_length=MAX_ID_LEN, description="Only this connection (default: all)."
    )


class TestMessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(default="Test message from the Courier console", max_length=1000)
    priority: Literal["high", "normal", "low"] = "normal"


@router.post(
    "/users/{user_id}/disconnect",
    response_class=OrjsonResponse,
    responses=docs.errors(*docs.BODY, *docs.AUTH, 503),
)
async def disconnect_user(
    user_id: str,
    request: Request,
    body: DisconnectIn | None = Body(None),
    who: Principal = Depends(admin),
    rt: Runtime = Depends(runtime),
) -> Any:
    """Close the user's connections (or one) on every node that holds them, with close
    code 4409; their unacked messages are handed back as on any close. Answers how
    many connections presence listed, per node, and the nodes that did not hear."""
    conn_id = body.conn_id if body is not None else None
    sent = await control.disconnect(
        rt, request.app.state.hub, user_id, conn_id=conn_id, by=who.user_id
    )
    audit.record(
        who.user_id,
        "disconnect",
        user_id,
        connections=sent.total,
        **({"conn": conn_id} if conn_id else {}),
    )
    return OrjsonResponse(
        {
            "user_id": user_id,
            "connections": sent.total,
            "nodes": sent.connections,
            "unreachable_nodes": sent.unreachable,
        }
    )


@router.get(
    "/users/{user_id}/connections",
    response_class=OrjsonResponse,
    responses=docs.errors(*docs.AUTH, 503),
)
async def user_connections(
    user_id: str, _: Principal = Depends(admin), rt: Runtime = Depends(runtime)
) -> Any:
    """The user's live connections: device, address, node, connected since, last seen."""
    conns = await queries(rt).connections(user_id)
    return OrjsonResponse({"user_id": user_id, "connections": conns})


@router.post(
    "/users/{user_id}/test-message",
    status_code=202,
    response_class=OrjsonResponse,
    responses=docs.errors(*docs.BODY, *docs.AUTH, 503),
)
async def test_message(
    user_id: str,
    body: TestMessageIn | None = Body(None),
    who: Principal = Depends(admin),
    rt: Runtime = Depends(runtime),
) -> Any:
    """Enqueue a guaranteed message for the user, payload ``{"type": "courier.test",
    "text", "from", "sent_at"}``: does it arrive, and how fast is it acked?"""
    body = body or TestMessageIn()
    payload = {
        "type": "courier.test",
        "text": body.text,
        "from": who.user_id,
        "sent_at": iso_ms(clock.wall_ms()),
    }
    accepted = await rt.producer.send(user_id, payload, priority=body.priority)
    audit.record(who.user_id, "test message", user_id, id=accepted.id)
    return OrjsonResponse(accepted.to_json(), status_code=202)


@router.get(
    "/users/{user_id}/tasks", response_class=OrjsonResponse, responses=docs.errors(*docs.AUTH, 503)
)
async def user_tasks(
    user_id: str, _: Principal = Depends(admin), rt: Runtime = Depends(runtime)
) -> Any:
    """The user's tasks: those not ended, then those of their recent messages (task
    status reports are messages on topic ``task:{id}``), newest report first."""
    tasks = {t["task_id"]: t for t in await rt.producer.active_tasks(user_id)}
    page = await queries(rt).user_messages(user_id, limit=RECENT_TASK_MESSAGES)
    for m in page.items:
        topic = m.get("topic") or ""
        task_id = topic[len(TASK_PREFIX) :] if topic.startswith(TASK_PREFIX) else None
        if task_id and task_id not in tasks:
            try:
                tasks[task_id] = await rt.producer.get_task(task_id, user_id)
            except NotFound:
                continue  # its hash ended before the message did
    ordered = sorted(tasks.values(), key=lambda t: t["updated_at"], reverse=True)
    return OrjsonResponse({"user_id": user_id, "tasks": ordered})


@router.post(
    "/dead-letters/replay",
    status_code=202,
    response_class=OrjsonResponse,
    responses={
        **docs.ok(202, "Queued again.", {"replayed": 12}),
        **docs.errors(*docs.AUTH, 503),
    },
)
async def replay_all_dead_letters(
    who: Principal = Depends(admin), rt: Runtime = Depends(runtime)
) -> Any:
    """A fresh cycle of attempts for every dead message of every partition's stream;
    how many went back to their stream (entries of messages no longer dead are left)."""
    n = await dead_letters(rt).replay_all(by=who.user_id)
    audit.record(who.user_id, "replay all dead letters", replayed=n)
    return OrjsonResponse({"replayed": n}, status_code=202)


@router.get("/stats/totals", response_class=OrjsonResponse, responses=docs.errors(*docs.AUTH, 503))
async def totals(_: Principal = Depends(admin), rt: Runtime = Depends(runtime)) -> Any:
    """What every live Courier process counted since it started (enqueued, delivered,
    retried, parked, expired, dead), each stamped with Redis time: two readings make
    rates (diff each process's own numbers). `enqueued` beside them counts every message
    the deployment accepted, from any producer (Redis's own count)."""
    reader = Totals(rt.redis, keyspace=rt.keyspace, process=rt.node_id)
    return OrjsonResponse(await reader.read())


@router.get("/stats/redis", response_class=OrjsonResponse, responses=docs.errors(*docs.AUTH, 503))
async def redis_health(_: Principal = Depends(admin), rt: Runtime = Depends(runtime)) -> Any:
    """Redis as this edge sees it: PING time, version, role, uptime, memory and its
    limit and policy, clients, commands per second, AOF."""
    start = time.perf_counter()
    await rt.redis.ping()
    ping_ms = (time.perf_counter() - start) * 1000
    info: dict[str, Any] = await rt.redis.info()
    keys = (
        *("redis_version", "role", "uptime_in_seconds", "connected_clients"),
        *("used_memory", "used_memory_human", "maxmemory", "maxmemory_policy"),
        *("instantaneous_ops_per_sec", "aof_enabled", "aof_last_write_status"),
        *("rdb_last_bgsave_status", "mem_fragmentation_ratio"),
    )
    return OrjsonResponse({"ping_ms": round(ping_ms, 2), **{k: info.get(k) for k in keys}})
