"""Producers' HTTP API: enqueue one message or a batch."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends
from pydantic import BaseModel, ConfigDict, Field

from delivery.enqueue import build
from delivery.exceptions import ValidationError
from delivery.message import MessageIn

from . import docs
from .auth import Principal
from .deps import runtime, service
from .responses import OrjsonResponse
from .runtime import Runtime
from .strict_json import StrictRoute

router = APIRouter(prefix="/v1", tags=["messages"], route_class=StrictRoute)


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    messages: list[MessageIn] = Field(min_length=1)


@router.post(
    "/messages",
    status_code=202,
    response_class=OrjsonResponse,
    responses={
        **docs.ok(202, "Accepted: one id (or one per recipient).", docs.ACCEPTED),
        **docs.errors(*docs.BODY, *docs.AUTH, 503),
    },
)
async def enqueue(
    msg: MessageIn = Body(openapi_examples=docs.MESSAGE_EXAMPLES),
    _: Principal = Depends(service),
    rt: Runtime = Depends(runtime),
) -> Any:
    """Enqueue one message: `user_id` (one id) or `recipients` (one id each)."""
    accepted = await rt.producer.submit(msg)
    if msg.user_id is not None:
        a = accepted[0]
        return OrjsonResponse({**a.to_json(), "duplicate": not a.created}, status_code=202)
    return OrjsonResponse(
        {"messages": [{**a.to_json(), "duplicate": not a.created} for a in accepted]},
        status_code=202,
    )


@router.post(
    "/messages/batch",
    status_code=202,
    response_class=OrjsonResponse,
    responses={
        **docs.ok(202, "Accepted, in order.", {"messages": [{"index": 0, **docs.ACCEPTED}]}),
        **docs.errors(*docs.BODY, *docs.AUTH, 503),
    },
)
async def enqueue_batch(
    batch: BatchIn = Body(openapi_examples={"two users": {"value": docs.BATCH_EXAMPLE}}),
    _: Principal = Depends(service),
    rt: Runtime = Depends(runtime),
) -> Any:
    """Enqueue many messages in one round trip; all are validated before any is written."""
    if len(batch.messages) > rt.settings.max_batch:
        raise ValidationError(f"at most {rt.settings.max_batch} messages per batch")
    for i, m in enumerate(batch.messages):  # name the bad one; nothing is written yet
        try:
            build(m, keyspace=rt.keyspace, limits=rt.producer.limits)
        except ValidationError as e:
            raise type(e)(f"messages[{i}]: {e.detail}") from None
    results = await rt.producer.submit_many(batch.messages)
    out = []
    for i, accepted in enumerate(results):
        for a in accepted:
            out.append({"index": i, **a.to_json(), "duplicate": not a.created})
    return OrjsonResponse({"messages": out}, status_code=202)
