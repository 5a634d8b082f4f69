"""Operators' HTTP API (admin role): message status and timeline, dead letters."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import ORJSONResponse

from .auth import Principal
from .deps import admin, runtime
from .runtime import Runtime

router = APIRouter(prefix="/v1", tags=["admin"])


@router.get("/messages/{message_id}", response_class=ORJSONResponse)
async def message_status(
    message_id: str, _: Principal = Depends(admin), rt: Runtime = Depends(runtime)
) -> Any:
    """Status, attempts, ttl and the full timeline of one message."""
    msg = await rt.store.get(message_id)
    return ORJSONResponse(msg.to_json())
