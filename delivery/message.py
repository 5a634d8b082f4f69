"""The message: what a producer hands in, what Redis keeps, what a client receives."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .exceptions import ValidationError
from .fields import MessageField
from .keys import partition_of
from .status import Status
from .text import text

MAX_ID_LEN = 200


class Priority(StrEnum):
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Priority.HIGH: 0, Priority.NORMAL: 1, Priority.LOW: 2}


def new_id(user_id: str, partitions: int) -> str:
    """``<partition>-<20 hex>``: the partition lets any process find the message's keys."""
    return id_in(partition_of(user_id, partitions))


def id_in(partition: int) -> str:
    """A new message id in a known partition (see :func:`new_id`)."""
    return f"{partition}-{secrets.token_hex(10)}"


# Control characters (C0, DEL, C1: a newline in an id would forge log lines), the line
# and paragraph separators, braces (hash tags) and lone surrogates (not UTF-8: Redis
# and JSON could not carry them).
_NOT_IN_NAMES = re.compile("[\x00-\x1f\x7f-\x9f{}\u2028\u2029\ud800-\udfff]")


def json_bytes(value: Any, what: str) -> bytes:
    """``value`` as compact JSON; ValidationError (422) saying why when it cannot be
    written: nested deeper than 254 levels, an integer outside 64 bits, a string that
    is not UTF-8 (a lone surrogate), a type JSON does not have."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError as e:
        why = str(e)
        if "Recursion" in why:
            why = "nested deeper than 254 levels"
        raise ValidationError(f"{what} cannot be stored as JSON: {why}") from None


def check_name(value: str, what: str) -> str:
    """A user id, key or topic as Courier stores it; ValueError (saying what is wrong)
    otherwise."""
    if not value or len(value) > MAX_ID_LEN:
        raise ValueError(f"{what} must be 1 to {MAX_ID_LEN} characters")
    if _NOT_IN_NAMES.search(value):
        raise ValueError(f"{what} must not contain control characters, braces or lone surrogates")
    return value


class MessageIn(BaseModel):
    """One message as a producer submits it (HTTP body or Python keyword arguments)."""

    model_config = ConfigDict(extra="forbid")

    user_id: str | None = None
    recipients: list[str] | None = None
    payload: Any = None
    priority: Priority = Priority.NORMAL
    delay_seconds: float | None = Field(default=None, ge=0)
    deliver_at: datetime | None = None
    ttl_seconds: int | None = Field(default=None, ge=1)
    idempotency_key: str | None = None
    collapse_key: str | None = None
    max_attempts: int | None = Field(default=None, ge=1, le=100)
    reply_requested: bool = False
    topic: str | None = None
    # `undelivered` (timeline and events) when no device acked it this long after it
    # was due; it stays deliverable. Default: COURIER_ESCALATE_AFTER_SECONDS.
    escalate_after_seconds: float | None = Field(default=None, gt=0, le=30 * 86400)

    @field_validator("user_id", "idempotency_key", "collapse_key", "topic")
    @classmethod
    def _names(cls, v: str | None, info: Any) -> str | None:
        return None if v is None else check_name(v, info.field_name)

    @field_validator("recipients")
    @classmethod
    def _recipients(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return None
        if not v:
            raise ValueError("recipients must not be empty")
        seen: dict[str, None] = {}
        for r in v:
            seen[check_name(r, "recipient")] = None
        return list(seen)

    @model_validator(mode="after")
    def _one_target(self) -> MessageIn:
        if (self.user_id is None) == (self.recipients is None):
            raise ValueError("give exactly one of user_id or recipients")
        if self.delay_seconds is not None and self.deliver_at is not None:
            raise ValueError("give at most one of delay_seconds or deliver_at")
        if self.payload is None:
            raise ValueError("payload is required (any JSON value but null)")
        return self

    def targets(self) -> list[str]:
        return [self.user_id] if self.user_id is not None else list(self.recipients or [])


@dataclass(frozen=True)
class Event:
    """One line of a message's timeline."""

    at: datetime
    event: str
    attempt: int
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"at": iso(self.at), "event": self.event, "attempt": self.attempt, **self.detail}


@dataclass(frozen=True)
class Message:
    """A stored message, as read back from its Redis hash."""

    id: str
    user_id: str
    priority: Priority
    payload_json: bytes
    status: Status
    created_at: datetime
    expires_at: datetime
    attempts: int
    max_attempts: int
    collapse_key: str | None = None
    topic: str | None = None
    reply_requested: bool = False
    idempotency_key: str | None = None
    reply_json: bytes | None = None
    last_error: str | None = None
    timeline: list[Event] = field(default_factory=list)

    @property
    def payload(self) -> Any:
        return orjson.loads(self.payload_json)

    @classmethod
    def from_hash(cls, message_id: str, h: dict[bytes, bytes]) -> Message:
        """The message from its id and hash (fields: :class:`delivery.fields.MessageField`)."""
        F = MessageField
        g = {k.decode(): v for k, v in h.items()}
        events: list[tuple[int, Event]] = []
        for k, v in g.items():
            if k.startswith(F.EVENT) and k[len(F.EVENT) :].isdigit():
                e = orjson.loads(v)
                detail = {x: y for x, y in e.items() if x not in ("t", "e", "a")}
                at, name, attempt = ms(e["t"]), e["e"], int(e.get("a", 0))
                events.append((int(k[len(F.EVENT) :]), Event(at, name, attempt, detail)))
        if not events or events[0][0] != 1:  # a message queued at once: queued at created
            events.append((1, Event(ms(int(g[F.CREATED_AT])), "queued", 0)))
        events.sort(key=lambda x: x[0])
        return cls(
            id=message_id,
            user_id=g[F.USER].decode(),
            priority=Priority(g[F.PRIORITY].decode()),
            payload_json=g[F.PAYLOAD],
            status=Status(g[F.STATUS].decode()),
            created_at=ms(int(g[F.CREATED_AT])),
            expires_at=ms(int(g[F.EXPIRES_AT])),
            attempts=int(g.get(F.ATTEMPTS, b"0")),
            max_attempts=int(g[F.MAX_ATTEMPTS]),
            collapse_key=_opt(g.get(F.COLLAPSE_KEY)),
            topic=_opt(g.get(F.TOPIC)),
            reply_requested=g.get(F.REPLY_REQUESTED) == b"1",
            idempotency_key=_opt(g.get(F.IDEMPOTENCY_KEY)),
            reply_json=g.get(F.REPLY) or None,
            last_error=_opt(g.get(F.LAST_ERROR)),
            timeline=[e for _, e in events],
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "user_id": self.user_id,
            "status": str(self.status),
            "priority": str(self.priority),
            "payload": orjson.Fragment(self.payload_json),
            "created_at": iso(self.created_at),
            "expires_at": iso(self.expires_at),
            "attempts": self.attempts,
            "max_attempts": self.max_attempts,
            "collapse_key": self.collapse_key,
            "topic": self.topic,
            "reply_requested": self.reply_requested,
            "idempotency_key": self.idempotency_key,
            "last_error": self.last_error,
            "timeline": [e.to_json() for e in self.timeline],
        }
        if self.reply_json is not None:
            out["reply"] = orjson.Fragment(self.reply_json)
        return out


def _opt(v: bytes | None) -> str | None:
    return text(v) if v else None


def ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


_SECOND: list[Any] = [None, ""]  # the last whole second iso_ms formatted, and its text


def iso_ms(value: int) -> str:
    """``iso(ms(value))``: the second's text is kept from the call before (a batch of
    message frames mostly shares one), the milliseconds appended."""
    second, milli = divmod(value, 1000)
    if second != _SECOND[0]:
        text_ = datetime.fromtimestamp(second, tz=UTC).isoformat(timespec="seconds")
        _SECOND[:] = second, text_.replace("+00:00", "")
    return f"{_SECOND[1]}.{milli:03d}Z"


def message_frame(
    *,
    message_id: str,
    priority: str,
    payload_json: bytes,
    created_ms: int,
    attempt: int,
    collapse_key: str | None = None,
    topic: str | None = None,
    reply_requested: bool = False,
) -> bytes:
    """The ``message`` frame a client receives, serialised once for every device."""
    frame: dict[str, Any] = {
        "type": "message",
        "id": message_id,
        "priority": priority,
        "payload": orjson.Fragment(payload_json),
        "created_at": iso_ms(created_ms),
        "attempt": attempt,
    }
    if collapse_key:
        frame["collapse_key"] = collapse_key
    if topic:
        frame["topic"] = topic
    if reply_requested:
        frame["reply_requested"] = True
    return orjson.dumps(frame)
