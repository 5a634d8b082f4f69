"""The WebSocket protocol, named in code once: every frame type, every frame the edge
builds, every ``error`` code and every close code (docs/protocol.md is the prose).

Two server frames are built in ``delivery``, where they are made once for every
device: ``message`` (:func:`delivery.message.message_frame`) and a task's live
``topic`` frame (:func:`delivery.tasks.build_task`, published by ``task.lua``); their
types are named here with the rest. Frames go out as compact JSON text, keys in the
order the builders write them.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum
from typing import Any

import orjson

MAX_ACK_IDS = 1000  # ids in one ack frame
MAX_TOPICS = 100  # topics one connection may subscribe to


class ServerFrame(StrEnum):
    """Types of the frames the server sends."""

    CONNECTED = "connected"  # first frame of every connection
    MESSAGE = "message"  # a stored message: ack it (built in delivery.message)
    PONG = "pong"  # the answer to a ping
    ERROR = "error"  # a client frame was refused; the connection stays open
    SUBSCRIBED = "subscribed"
    UNSUBSCRIBED = "unsubscribed"
    TOPIC = "topic"  # a live update of a subscribed topic
    TASKS = "tasks"  # the user's unfinished tasks, right after `connected`
    BROADCAST = "broadcast"  # a best-effort live notice
    REFRESHED = "refreshed"  # a refresh was taken: the connection now lives until `exp`


class ClientFrame(StrEnum):
    """Types of the frames a client may send (see :data:`api.frames.HANDLERS`)."""

    ACK = "ack"
    PING = "ping"
    SUBSCRIBE = "subscribe"
    UNSUBSCRIBE = "unsubscribe"
    REPLY = "reply"
    CANCEL = "cancel"
    REFRESH = "refresh"  # a fresh token for the same user, before the current one expires


class ErrorCode(StrEnum):
    """The ``code`` of an ``error`` frame."""

    INVALID_JSON = "invalid_json"
    INVALID_FRAME = "invalid_frame"
    UNKNOWN_TYPE = "unknown_type"
    UNKNOWN_MESSAGE = "unknown_message"
    REPLY_NOT_REQUESTED = "reply_not_requested"
    ALREADY_REPLIED = "already_replied"
    UNKNOWN_TASK = "unknown_task"
    TOO_MANY_TOPICS = "too_many_topics"
    UNAVAILABLE = "unavailable"  # Redis refused (full, failing over): send it again later
    REFRESH_REFUSED = "refresh_refused"  # the token is expired, malformed or wrongly signed
    REFRESH_WRONG_SUBJECT = "refresh_wrong_subject"  # the token is another user's


class CloseReason(StrEnum):
    """Close reasons more precise than a code's own (see :class:`CloseCode`)."""

    TOKEN_EXPIRED = "token_expired"  # 4401: the token's `exp` passed without a refresh


class CloseCode(IntEnum):
    """Every close code the edge sends or records, each with the reason it sends
    unless the caller names a more precise one (4401 says what was wrong with the
    token, 4403 which check refused it)."""

    reason: str

    def __new__(cls, value: int, reason: str) -> CloseCode:
        member = int.__new__(cls, value)
        member._value_ = value
        member.reason = reason
        return member

    NORMAL = 1000, ""
    GOING_AWAY = 1001, "server shutting down"
    ABNORMAL = 1006, "connection lost"  # never sent: the socket went without a close frame
    SLOW_READER = 1008, "send buffer full: client reads too slowly"
    TOO_BIG = 1009, "frame too big"
    INTERNAL_ERROR = 1011, "internal error"
    SERVICE_RESTART = 1012, "service restart"  # uvicorn's own, when it shuts down first
    TRY_AGAIN_LATER = 1013, "server full, try again later"
    UNAUTHORIZED = 4401, "unauthorized"
    FORBIDDEN = 4403, "forbidden"
    HEARTBEAT_MISSED = 4408, "heartbeat missed"
    DISCONNECTED = 4409, "disconnected by an operator"  # POST /v1/users/{id}/disconnect
    RATE_LIMITED = 4429, "rate limited"


_CODES: dict[int, CloseCode] = {int(c): c for c in CloseCode}
KNOWN_CODES = frozenset(_CODES)


def reason_of(code: int) -> str:
    """The reason sent with a close code ("" for a code not named here)."""
    known = _CODES.get(code)
    return known.reason if known is not None else ""


def close_label(code: int) -> str:
    """A close code as a metric label: the known ones, everything else "other" (a
    client chooses its own close code, and labels must stay few)."""
    return str(int(code)) if code in KNOWN_CODES else "other"


def _text(frame: dict[str, Any]) -> str:
    return orjson.dumps(frame).decode()


def connected(
    *, connection_id: str, user_id: str, heartbeat_interval: float, server_time: str
) -> str:
    return _text(
        {
            "type": ServerFrame.CONNECTED,
            "connection_id": connection_id,
            "user_id": user_id,
            "heartbeat_interval": heartbeat_interval,
            "server_time": server_time,
        }
    )


def tasks(active: list[dict[str, Any]]) -> str:
    return _text({"type": ServerFrame.TASKS, "tasks": active})


def pong(ts: Any) -> str:
    """``ts`` is the ping's, echoed as it came."""
    return _text({"type": ServerFrame.PONG, "ts": ts})


def error(code: str, detail: str, **extra: Any) -> str:
    """``extra`` names what was refused (``id``, ``topic``, ``task_id``)."""
    return _text({"type": ServerFrame.ERROR, "code": code, "detail": detail, **extra})


def refreshed(exp: float) -> str:
    """``exp``: the new token's expiry, unix seconds (as the token has it)."""
    return _text({"type": ServerFrame.REFRESHED, "exp": unix_seconds(exp)})


def unix_seconds(exp: float) -> int | float:
    """A token's ``exp`` for a frame: an integer unless the token had a fraction."""
    return int(exp) if float(exp).is_integer() else exp


def subscribed(topic: str) -> str:
    return _text({"type": ServerFrame.SUBSCRIBED, "topic": topic})


def unsubscribed(topic: str) -> str:
    return _text({"type": ServerFrame.UNSUBSCRIBED, "topic": topic})


def topic(name: str, data: Any) -> str:
    return _text({"type": ServerFrame.TOPIC, "topic": name, "data": data})


def broadcast(*, broadcast_id: str, payload_json: bytes, system: bool) -> str:
    """``payload_json`` is the producer's payload, already serialised."""
    return _text(
        {
            "type": ServerFrame.BROADCAST,
            "id": broadcast_id,
            "payload": orjson.Fragment(payload_json),
            "system": system,
        }
    )
