"""Client frames: ``ack``, ``ping``, ``subscribe``, ``unsubscribe``, ``reply``,
``cancel``. Bad frames raise :class:`FrameError`, which becomes an ``error`` frame;
the connection stays open."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson

from delivery.message import MAX_ID_LEN
from delivery.presence import Conn

if TYPE_CHECKING:
    from .connection import Connection
    from .hub import Hub

MAX_ACK_IDS = 1000
MAX_TOPICS = 100


class FrameError(Exception):
    def __init__(self, code: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.extra = extra


def _str(frame: dict[str, Any], field: str) -> str:
    v = frame.get(field)
    if not isinstance(v, str) or not v or len(v) > MAX_ID_LEN:
        raise FrameError("invalid_frame", f"'{field}' must be a non-empty string")
    return v


def parse(text: str) -> dict[str, Any]:
    """A client frame as a JSON object with a string 'type'; FrameError otherwise."""
    try:
        frame = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise FrameError("invalid_json", "frame is not valid JSON") from None
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        raise FrameError("invalid_frame", "a frame is a JSON object with a 'type'")
    return frame


async def handle_frame(hub: Hub, conn: Connection, text: str) -> None:
    await dispatch(hub, conn, parse(text))


async def dispatch(hub: Hub, conn: Connection, frame: dict[str, Any]) -> None:
    """Serve a parsed frame (see :func:`parse`)."""
    handler = HANDLERS.get(frame["type"])
    if handler is None:
        raise FrameError("unknown_type", f"unknown frame type {frame['type']!r}")
    await handler(hub, conn, frame)


def ack_ids(frame: dict[str, Any]) -> list[str]:
    """The message ids of an ``ack`` frame ('id' or 'ids'); FrameError if malformed."""
    if "ids" in frame:
        ids = frame["ids"]
        if not isinstance(ids, list) or not ids or len(ids) > MAX_ACK_IDS:
            raise FrameError("invalid_frame", f"'ids' must be a list of 1 to {MAX_ACK_IDS} ids")
        if not all(isinstance(i, str) and 0 < len(i) <= MAX_ID_LEN for i in ids):
            raise FrameError("invalid_frame", "'ids' must hold message id strings")
        return ids
    return [_str(frame, "id")]


async def _ack(hub: Hub, conn: Connection, frame: dict[str, Any]) -> None:
    await ack(hub, conn, ack_ids(frame))


async def ack(hub: Hub, conn: Connection, ids: list[str]) -> None:
    """Acknowledge `ids` for the connection (of one frame, or of several consecutive
    ack frames taken together: the same answers and error frames, in the same order)."""
    codes = await hub.acks.ack(
        user_id=conn.user_id, conn_id=conn.conn_id, node_id=conn.node_id, message_ids=ids
    )
    bad = [mid for mid, code in codes.items() if code in ("unknown", "forbidden")]
    settled = [mid for mid in ids if mid not in bad] if bad else ids
    conn.acked_ids(settled)
    for other in hub.by_user.get(conn.user_id, ()):  # its other devices here got them too
        if other is not conn:
            for mid in settled:
                other.unacked.pop(mid, None)
    for mid in bad:
        conn.offer(_error("unknown_message", f"no message {mid} for this user", id=mid))


async def _ping(hub: Hub, conn: Connection, frame: dict[str, Any]) -> None:
    ts = frame.get("ts")
    if ts is None:
        ts = int(time.time() * 1000)
    if await hub.rt.presence.touch([Conn(conn.user_id, conn.conn_id, conn.node_id)]):
        hub.drain_again(conn)  # its presence had been lost: what was parked meanwhile
    conn.offer(orjson.dumps({"type": "pong", "ts": ts}).decode())


async def _subscribe(hub: Hub, conn: Connection, frame: dict[str, Any]) -> None:
    topic = _str(frame, "topic")
    if topic not in conn.topics and len(conn.topics) >= MAX_TOPICS:
        raise FrameError("too_many_topics", f"at most {MAX_TOPICS} topics per connection")
    current = await hub.on_subscribe(conn, topic)  # may refuse with a FrameError
    conn.topics.add(topic)
    conn.offer(orjson.dumps({"type": "subscribed", "topic": topic}).decode())
    if current is not None:
        conn.offer(current)


async def _unsubscribe(hub: Hub, conn: Connection, frame: dict[str, Any]) -> None:
    topic = _str(frame, "topic")
    conn.topics.discard(topic)
    conn.offer(orjson.dumps({"type": "unsubscribed", "topic": topic}).decode())


async def _reply(hub: Hub, conn: Connection, frame: dict[str, Any]) -> None:
    mid = _str(frame, "id")
    if "data" not in frame:
        raise FrameError("invalid_frame", "'data' is required")
    code = await hub.rt.store.reply(
        user_id=conn.user_id,
        conn_id=conn.conn_id,
        message_id=mid,
        data=orjson.dumps(frame["data"]),
    )
    if code in ("unknown", "forbidden"):
        raise FrameError("unknown_message", f"no message {mid} for this user", id=mid)
    if code == "not_requested":
        raise FrameError("reply_not_requested", f"message {mid} asked for no reply", id=mid)
    if code == "duplicate":
        raise FrameError("already_replied", f"message {mid} was answered already", id=mid)


async def _cancel(hub: Hub, conn: Connection, frame: dict[str, Any]) -> None:
    task_id = _str(frame, "task_id")
    code = await hub.rt.store.request_cancel(user_id=conn.user_id, task_id=task_id)
    if code != "ok":
        raise FrameError("unknown_task", f"no task {task_id} of this user", task_id=task_id)


def _error(code: str, detail: str, **extra: Any) -> str:
    return orjson.dumps({"type": "error", "code": code, "detail": detail, **extra}).decode()


HANDLERS: dict[str, Callable[[Hub, Connection, dict[str, Any]], Awaitable[None]]] = {
    "ack": _ack,
    "ping": _ping,
    "subscribe": _subscribe,
    "unsubscribe": _unsubscribe,
    "reply": _reply,
    "cancel": _cancel,
}
