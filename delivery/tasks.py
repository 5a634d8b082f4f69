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
from typing import Any, ClassVar, NamedTuple

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

from .enqueue import Accepted, Enqueue, Limits, build
from .exceptions import Conflict, ValidationError
from .fields import TaskField
from .keys import TASK_TTL_MS, Keyspace
from .message import MAX_ID_LEN, Priority, check_name, iso_ms, json_bytes
from .text import text


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

    @field_validator("user_id")
    @classmethod
    def _user(cls, v: str) -> str:
        return check_name(v, "user_id")

    def data(self) -> dict[str, Any]:
        return {
            "progress": self.progress,
            "message": self.message,
            "result": self.result,
            "error": self.error,
        }


MAX_TASK_ID_LEN = MAX_ID_LEN - len("task:")  # its topic is a name like the others


def topic_of(task_id: str) -> str:
    return f"task:{task_id}"


class TaskCode(StrEnum):
    OK = "ok"  # recorded, and its message enqueued
    FINAL = "final"  # the task had ended already: nothing changed


class TaskAnswer(NamedTuple):
    code: TaskCode
    status: str  # FINAL: the status it ended with (else the one just recorded)
    message: Accepted | None = None  # OK: the message to the owner


@dataclass(frozen=True, slots=True)
class Task:
    """``task.lua``: a task's latest status and its message to the owner (ARGV 9..:
    the message's ``enqueue.lua`` arguments)."""

    SCRIPT: ClassVar[str] = "task"
    task_id: str
    user_id: str
    status: TaskStatus
    data: bytes  # JSON object: progress, message, result, error
    ttl_ms: int  # TASK_TTL_MS
    channel: str  # the topics channel
    frame: bytes  # the live frame's envelope (JSON)
    message: Enqueue

    @property
    def prefix(self) -> str:
        return self.message.prefix

    def args(self) -> list[Any]:
        return [
            *(self.task_id, self.user_id, str(self.status), self.data, self.ttl_ms),
            *(self.channel, self.frame, "1" if self.status.final else "0"),
            *self.message.args(),
        ]

    def parse(self, reply: Any) -> TaskAnswer:
        if text(reply[0]) == TaskCode.FINAL:
            return TaskAnswer(TaskCode.FINAL, text(reply[1]))
        return TaskAnswer(TaskCode.OK, str(self.status), self.message.parse(reply[1:]))


class CancelCode(StrEnum):
    OK = "ok"  # flagged and published to the task's reporter
    UNKNOWN = "unknown"  # the user has no such task (nothing written)


@dataclass(frozen=True, slots=True)
class Cancel:
    """``cancel.lua``: a user asks the producer of one of their tasks to cancel it."""

    SCRIPT: ClassVar[str] = "cancel"
    prefix: str
    user_id: str
    task_id: str
    channel: str

    def args(self) -> list[Any]:
        return [self.user_id, self.task_id, self.channel]

    def parse(self, reply: Any) -> CancelCode:
        return CancelCode(text(reply))


def build_task(task_id: str, update: TaskUpdate, *, keyspace: Keyspace, limits: Limits) -> Task:
    """Validate a task update and turn it into the ``task`` script's call."""
    try:
        check_name(topic_of(task_id), "task:{task_id}")
    except ValueError:
        raise ValidationError(
            f"task_id must be 1 to {MAX_TASK_ID_LEN} characters, without control characters, "
            "braces or lone surrogates"
        ) from None
    data = update.data()
    payload = {"type": "task", "task_id": task_id, "status": str(update.status), **data}
    final = update.status.final
    msg = {
        "user_id": update.user_id,
        "payload": payload,
        "priority": Priority.HIGH if final else Priority.NORMAL,
        "collapse_key": topic_of(task_id),
        "topic": topic_of(task_id),
    }
    (call,) = build(msg, keyspace=keyspace, limits=limits, keep=final)
    live = orjson.dumps({"type": "topic", "topic": topic_of(task_id), "data": payload})
    # "o": task topics are per owner; nodes send the frame to the owner's connections only
    envelope = orjson.dumps(
        {"t": topic_of(task_id), "o": update.user_id, "f": orjson.Fragment(live)}
    )
    return Task(
        task_id=task_id,
        user_id=update.user_id,
        status=update.status,
        data=json_bytes(data, "task status"),
        ttl_ms=TASK_TTL_MS,
        channel=keyspace.topics_channel,
        frame=envelope,
        message=call,
    )


def task_result(task_id: str, answer: TaskAnswer) -> dict[str, Any]:
    """Turn the script's answer into the API's answer, raising on refusal."""
    if answer.code is TaskCode.FINAL or answer.message is None:
        raise Conflict(f"task {task_id} already ended ({answer.status}); nothing changed")
    return {
        "task_id": task_id,
        "message_id": answer.message.id,
        "message_status": answer.message.status,
    }


def task_view(h: dict[bytes, bytes]) -> dict[str, Any]:
    """The task hash as ``GET /v1/tasks/{id}`` shows it."""
    g = {k.decode(): v.decode() for k, v in h.items()}
    return {
        "task_id": g[TaskField.ID],
        "user_id": g[TaskField.USER],
        "status": g[TaskField.STATUS],
        **orjson.loads(g.get(TaskField.DATA, "{}")),
        "cancel_requested": g.get(TaskField.CANCEL_REQUESTED) == "1",
        "created_at": iso_ms(int(g.get(TaskField.CREATED_AT, g[TaskField.UPDATED_AT]))),
        "updated_at": iso_ms(int(g[TaskField.UPDATED_AT])),
        "message_id": g.get(TaskField.MESSAGE_ID),
    }
