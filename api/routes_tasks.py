"""Task status (services publish, owners read) and broadcasts."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import orjson
from fastapi import APIRouter, Body, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from delivery.message import check_name, json_bytes
from delivery.tasks import TaskUpdate

from . import docs, protocol
from .auth import Principal, Role
from .deps import principal, runtime, service
from .errors import ApiError
from .responses import OrjsonResponse
from .runtime import Runtime
from .strict_json import StrictRoute

router = APIRouter(prefix="/v1", tags=["tasks"], route_class=StrictRoute)


@router.post(
    "/tasks/{task_id}/status",
    status_code=202,
    response_class=OrjsonResponse,
    responses=docs.errors(*docs.BODY, *docs.AUTH, 503),
)
async def publish_task_status(
    task_id: str,
    update: TaskUpdate = Body(openapi_examples={"progress": {"value": docs.TASK_EXAMPLE}}),
    _: Principal = Depends(service),
    rt: Runtime = Depends(runtime),
) -> Any:
    """Publish a task's status to its owner (guaranteed, latest progress only while
    offline) and live to connections subscribed to `task:{task_id}`."""
    out = await rt.producer.task_status(task_id, update.user_id, update.status, **update.data())
    return OrjsonResponse(out, status_code=202)


@router.get(
    "/tasks/{task_id}", response_class=OrjsonResponse, responses=docs.errors(*docs.AUTH, 404, 503)
)
async def get_task(
    task_id: str,
    user_id: str | None = Query(None, description="Admins name the owner."),
    who: Principal = Depends(principal),
    rt: Runtime = Depends(runtime),
) -> Any:
    """The latest status of one of the caller's tasks (for clients without WebSocket)."""
    owner = who.user_id
    if user_id is not None and user_id != who.user_id:
        if who.role is not Role.ADMIN:
            raise ApiError(403, "only admins may read another user's tasks")
        owner = user_id
    return OrjsonResponse(await rt.producer.get_task(task_id, owner))


@router.get("/tasks", response_class=OrjsonResponse, responses=docs.errors(401, 503))
async def my_tasks(who: Principal = Depends(principal), rt: Runtime = Depends(runtime)) -> Any:
    """The caller's tasks that have not ended."""
    return OrjsonResponse({"tasks": await rt.producer.active_tasks(who.user_id)})


class BroadcastIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    payload: Any = Field(description="Any JSON value.")
    users: list[str] | None = Field(
        default=None, max_length=10000, description="Only these users (default: everyone)."
    )
    system: bool = Field(default=False, description="Mark it as a system notification.")
    wait_ms: int = Field(
        default=500, ge=0, le=5000, description="How long to wait for the nodes' counts."
    )


@router.post(
    "/broadcast", response_class=OrjsonResponse, responses=docs.errors(*docs.BODY, *docs.AUTH, 503)
)
async def broadcast(
    body: BroadcastIn, _: Principal = Depends(service), rt: Runtime = Depends(runtime)
) -> Any:
    """Push a live frame to every online user (or the listed ones) and report how many
    connections got it. Best effort: offline users never see it; for guaranteed
    delivery to a list of users, POST /v1/messages with `recipients`."""
    payload = json_bytes(body.payload, "payload")
    if len(payload) > rt.settings.max_payload_bytes:
        raise ApiError(413, f"payload over {rt.settings.max_payload_bytes} bytes")
    for u in body.users or ():
        try:
            check_name(u, "users[]")
        except ValueError as e:
            raise ApiError(422, str(e)) from None
    bid = secrets.token_hex(8)
    frame = protocol.broadcast(broadcast_id=bid, payload_json=payload, system=body.system)
    env = orjson.dumps({"id": bid, "u": body.users, "f": orjson.Fragment(frame)})
    nodes = int(await rt.redis.publish(rt.keyspace.broadcast_channel, env))
    report = rt.keyspace.broadcast_report(bid)
    got: dict[Any, Any] = {}
    for _tick in range(max(1, body.wait_ms // 20)):
        got = await rt.redis.hgetall(report)
        if int(got.get(b"nodes", 0)) >= nodes:
            break
        await asyncio.sleep(0.02)
    return OrjsonResponse(
        {
            "id": bid,
            "nodes": nodes,
            "nodes_reported": int(got.get(b"nodes", 0)),
            "connections": int(got.get(b"connections", 0)),
        }
    )
