"""Client frames: ``ack``, ``ping``, ``subscribe``, ``unsubscribe``, ``reply``,
``cancel``, ``refresh`` (:class:`~api.protocol.ClientFrame`), parsed and served. Bad frames raise
:class:`FrameError`, which becomes an ``error`` frame; the connection stays open.

:func:`parse` and :func:`ack_ids` do no I/O (the reader's plan uses them,
see :mod:`api.inbound`); the handlers get the :class:`~api.node.Node` the
connection lives on."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from consumers.resilience import transient
from delivery import clock
from delivery.exceptions import NotFound, ValidationError
from delivery.message import MAX_ID_LEN, json_bytes
from delivery.presence import Conn

from . import protocol, strict_json
from .auth import AuthError
from .protocol import MAX_ACK_IDS, MAX_TOPICS, ClientFrame, ErrorCode

if TYPE_CHECKING:
    from .connection import Connection
    from .node import Node


class FrameError(Exception):
    def __init__(self, code: ErrorCode, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.extra = extra

    def frame(self) -> str:
        """The ``error`` frame that answers it."""
        return protocol.error(self.code, self.detail, **self.extra)


def _str(frame: dict[str, Any], field: str) -> str:
    v = frame.get(field)
    if not isinstance(v, str) or not v or len(v) > MAX_ID_LEN:
        raise FrameError(ErrorCode.INVALID_FRAME, f"'{field}' must be a non-empty string")
    return v


def parse(text: str) -> dict[str, Any]:
    """A client frame as a JSON object with a string 'type'; FrameError otherwise."""
    try:
        frame = strict_json.loads(text)
    except json.JSONDecodeError:
        raise FrameError(ErrorCode.INVALID_JSON, "frame is not valid JSON") from None
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        raise FrameError(ErrorCode.INVALID_FRAME, "a frame is a JSON object with a 'type'")
    return frame


async def dispatch(node: Node, conn: Connection, frame: dict[str, Any]) -> None:
    """Serve a parsed frame (see :func:`parse`)."""
    handler = HANDLERS.get(frame["type"])
    if handler is None:
        raise FrameError(ErrorCode.UNKNOWN_TYPE, f"unknown frame type {frame['type']!r}")
    await handler(node, conn, frame)


def ack_ids(frame: dict[str, Any]) -> list[str]:
    """The message ids of an ``ack`` frame ('id' or 'ids'); FrameError if malformed."""
    if "ids" in frame:
        ids = frame["ids"]
        if not isinstance(ids, list) or not ids or len(ids) > MAX_ACK_IDS:
            raise FrameError(
                ErrorCode.INVALID_FRAME, f"'ids' must be a list of 1 to {MAX_ACK_IDS} ids"
            )
        if not all(isinstance(i, str) and 0 < len(i) <= MAX_ID_LEN for i in ids):
            raise FrameError(ErrorCode.INVALID_FRAME, "'ids' must hold message id strings")
        return ids
    return [_str(frame, "id")]


async def _ack(node: Node, conn: Connection, frame: dict[str, Any]) -> None:
    await ack(node, conn, ack_ids(frame))


async def ack(node: Node, conn: Connection, ids: list[str]) -> None:
    """Acknowledge `ids` for the connection (of one frame, or of several consecutive
    ack frames taken together: the same answers and error frames, in the same order)."""
    codes = await node.acks.ack(
        user_id=conn.user_id, conn_id=conn.conn_id, node_id=conn.node_id, message_ids=ids
    )
    settle(node, conn, ids, codes)


def settle(node: Node, conn: Connection, ids: list[str], codes: Mapping[str, str]) -> None:
    """What Redis answered to the ack of `ids`: the settled ones leave the window of
    the connection (and of the user's other connections here), an unknown or
    forbidden id is answered with an ``unknown_message`` error frame."""
    bad = [mid for mid, code in codes.items() if code in ("unknown", "forbidden")]
    settled = [mid for mid in ids if mid not in bad] if bad else ids
    conn.acked_ids(settled)
    for other in node.hub.others_of(conn):  # its other devices here got them too
        for mid in settled:
            other.unacked.pop(mid, None)
    for mid in bad:
        conn.offer(_unknown_message(mid).frame())


def _unknown_message(mid: str) -> FrameError:
    return FrameError(ErrorCode.UNKNOWN_MESSAGE, f"no message {mid} for this user", id=mid)


async def _ping(node: Node, conn: Connection, frame: dict[str, Any]) -> None:
    ts = frame.get("ts")
    if ts is None:
        ts = clock.wall_ms()
    elif not isinstance(ts, int | float | str | bool):
        raise FrameError(ErrorCode.INVALID_FRAME, "'ts' must be a number or a string")
    try:
        if await node.rt.presence.touch([Conn(conn.user_id, conn.conn_id, conn.node_id)]):
            node.drain_again(conn)  # its presence had been lost: what was parked meanwhile
    except Exception as e:  # Redis full or away: the client is alive all the same
        if not transient(e):
            raise
    conn.offer(protocol.pong(ts))


async def _subscribe(node: Node, conn: Connection, frame: dict[str, Any]) -> None:
    topic = _str(frame, "topic")
    if topic not in conn.topics and len(conn.topics) >= MAX_TOPICS:
        raise FrameError(ErrorCode.TOO_MANY_TOPICS, f"at most {MAX_TOPICS} topics per connection")
    current = await _current(node, conn, topic)  # may refuse with a FrameError
    conn.topics.add(topic)
    conn.offer(protocol.subscribed(topic))
    if current is not None:
        conn.offer(current)


async def _current(node: Node, conn: Connection, topic: str) -> str | None:
    """Task topics are their owner's: refuse others; the task's current state as a
    first ``topic`` frame, so a late subscriber catches up. None for other topics."""
    if not topic.startswith("task:"):
        return None
    task_id = topic[5:]
    try:
        task = await node.rt.producer.get_task(task_id, conn.user_id)
    except NotFound:
        raise FrameError(
            ErrorCode.UNKNOWN_TASK, f"no task {task_id} of this user", topic=topic
        ) from None
    return protocol.topic(topic, task)


async def _unsubscribe(node: Node, conn: Connection, frame: dict[str, Any]) -> None:
    topic = _str(frame, "topic")
    conn.topics.discard(topic)
    conn.offer(protocol.unsubscribed(topic))


async def _reply(node: Node, conn: Connection, frame: dict[str, Any]) -> None:
    mid = _str(frame, "id")
    if "data" not in frame:
        raise FrameError(ErrorCode.INVALID_FRAME, "'data' is required")
    code = await node.rt.store.reply(
        user_id=conn.user_id,
        conn_id=conn.conn_id,
        message_id=mid,
        data=_data(frame["data"]),
    )
    if code in ("unknown", "forbidden"):
        raise _unknown_message(mid)
    if code == "not_requested":
        raise FrameError(ErrorCode.REPLY_NOT_REQUESTED, f"message {mid} asked for no reply", id=mid)
    if code == "duplicate":
        raise FrameError(ErrorCode.ALREADY_REPLIED, f"message {mid} was answered already", id=mid)


def _data(value: Any) -> bytes:
    try:
        return json_bytes(value, "'data'")
    except ValidationError as e:
        raise FrameError(ErrorCode.INVALID_FRAME, e.detail) from None


async def _cancel(node: Node, conn: Connection, frame: dict[str, Any]) -> None:
    task_id = _str(frame, "task_id")
    code = await node.rt.store.request_cancel(user_id=conn.user_id, task_id=task_id)
    if code != "ok":
        raise FrameError(ErrorCode.UNKNOWN_TASK, f"no task {task_id} of this user", task_id=task_id)


async def _refresh(node: Node, conn: Connection, frame: dict[str, Any]) -> None:
    """A fresh token for the connection's user: its ``exp`` replaces the old one. A
    token that does not verify, or is another user's, changes nothing: the connection
    keeps its identity and is closed (4401) when its current token expires."""
    token = frame.get("token")
    if not isinstance(token, str) or not token:
        raise FrameError(ErrorCode.INVALID_FRAME, "'token' must be a non-empty string")
    keeps = protocol.unix_seconds(conn.token_exp)
    try:
        who = node.verifier.verify(token)
    except AuthError as e:
        raise FrameError(
            ErrorCode.REFRESH_REFUSED,
            f"{e.detail}: the connection keeps its token until it expires",
            exp=keeps,
        ) from None
    if who.user_id != conn.user_id:
        raise FrameError(
            ErrorCode.REFRESH_WRONG_SUBJECT,
            "the token is another user's: the connection stays this user's",
            exp=keeps,
        )
    conn.token_exp = who.exp
    node.expiries.watch(conn)
    conn.offer(protocol.refreshed(who.exp))


HANDLERS: dict[str, Callable[[Node, Connection, dict[str, Any]], Awaitable[None]]] = {
    ClientFrame.ACK: _ack,
    ClientFrame.PING: _ping,
    ClientFrame.SUBSCRIBE: _subscribe,
    ClientFrame.UNSUBSCRIBE: _unsubscribe,
    ClientFrame.REPLY: _reply,
    ClientFrame.CANCEL: _cancel,
    ClientFrame.REFRESH: _refresh,
}
