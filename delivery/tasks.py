"""Task status: a background job reports pending/running/progress/completed/failed/
cancelled to the user who started it.

Each report is one atomic script (``lua/task.lua``): the task hash (latest status,
for ``GET /v1/tasks/{id}`` and for clients that connect later), a guaranteed message
to the owner with collapse key ``task:<id>`` (an offline owner finds only the latest
progress; final statuses are never collapsed away) and a live ``topic`` frame for
connections subscribed to ``task:<id>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from .exceptions import Conflict, ValidationError
from .keys import Keyspace
from .message import MAX_ID_LEN, MessageIn, Priority, iso_ms
from .producer import Limits, build

TASK_TTL_MS = 7 * 86400 * 1000


class TaskStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    PROGRESS = "progress"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        return self in (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED)


class TaskUpdate(BaseModel):
    """The body of ``POST /v1/tasks/{task_id}/status``."""

    model_config = ConfigDict(extra="forbid")

    user_id: str = Field(min_length=1, max_length=MAX_ID_LEN)
    status: TaskStatus
    progress: float | None = Field(default=None, ge=0, le=100)
    message: str | None = Field(default=None, max_length=2000)
    result: Any = None
    error: Any = None

    def data(self) -> dict[str, Any]:
        return {
            "progress": self.progress,
            "message": self.message,
            "result": self.result,
            "error": self.error,
        }


def topic_of(task_id: str) -> str:
    return f"task:{task_id}"


@dataclass(frozen=True)
class TaskCall:
    prefix: str
    args: list[Any]


def build_task(task_id: str, update: TaskUpdate, *, keyspace: Keyspace, limits: Limits) -> TaskCall:
    """Validate a task update and turn it into the ``task`` script's arguments."""
    if not task_id or len(task_id) > MAX_ID_LEN or any(c in task_id for c in "{}\n\r"):
        raise ValidationError("task_id must be 1 to 200 characters, no braces or newlines")
    data = update.data()
    payload = {"type": "task", "task_id": task_id, "status": str(update.status), **data}
    final = update.status.final
    msg = MessageIn(
        user_id=update.user_id,
        payload=payload,
        priority=Priority.HIGH if final else Priority.NORMAL,
        collapse_key=topic_of(task_id),
        topic=topic_of(task_id),
    )
    (call,) = build(msg, keyspace=keyspace, limits=limits, keep=final)
    live = orjson.dumps({"type": "topic", "topic": topic_of(task_id), "data": payload})
    # "o": task topics are per owner; nodes send the frame to the owner's connections only
    envelope = orjson.dumps(
        {"t": topic_of(task_id), "o": update.user_id, "f": orjson.Fragment(live)}
    )
    return TaskCall(
        call.prefix,
        [
            task_id,
            update.user_id,
            str(update.status),
            orjson.dumps(data),
            TASK_TTL_MS,
            keyspace.topics_channel,
            envelope,
            "1" if final else "0",
            *call.args,
        ],
    )


def task_result(task_id: str, res: list[Any]) -> dict[str, Any]:
    """Turn the script's answer into the API's answer, raising on refusal."""
    code = _s(res[0])
    if code == "final":
        raise Conflict(f"task {task_id} already ended ({_s(res[1])}); nothing changed")
    return {"task_id": task_id, "message_id": _s(res[1]), "message_status": _s(res[2])}


def task_view(h: dict[bytes, bytes]) -> dict[str, Any]:
    """The task hash as ``GET /v1/tasks/{id}`` shows it."""
    g = {k.decode(): v.decode() for k, v in h.items()}
    return {
        "task_id": g["task_id"],
        "user_id": g["user_id"],
        "status": g["status"],
        **orjson.loads(g.get("data", "{}")),
        "cancel_requested": g.get("cancel_requested") == "1",
        "created_at": iso_ms(int(g.get("created_at", g["updated_at"]))),
        "updated_at": iso_ms(int(g["updated_at"])),
        "message_id": g.get("message_id"),
    }


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)
