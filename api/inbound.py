"""What to do with the client's frames of one socket read: a plan, made without I/O.

:func:`plan` takes the ASGI receive events the socket delivered at once (see
``Wire.receive_many``) and returns the ordered actions that serve them; the endpoint's
reader (``_read`` in :mod:`api.ws`) only carries them out. Consecutive ``ack`` frames
become one :class:`Ack` (up to MAX_ACK_IDS ids): one Redis request and one wake-up
instead of one per frame. Any other frame, a refused frame or the end of the read
sends the gathered ids first, so answers keep the order of the frames.

A frame too big (1009) or over the rate limit (4429) closes the connection: what the
client sent after it is not served, but the acks gathered before it still are, and a
``websocket.disconnect`` always ends the plan with :class:`Closed`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .frames import FrameError, ack_ids, parse
from .protocol import MAX_ACK_IDS, ClientFrame, CloseCode


@dataclass(frozen=True, slots=True)
class Ack:
    """Acknowledge these ids (of one or more consecutive ``ack`` frames)."""

    ids: list[str]


@dataclass(frozen=True, slots=True)
class Serve:
    """Dispatch this parsed frame to its handler."""

    frame: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Refuse:
    """Answer a frame that could not be parsed with this ``error`` frame."""

    frame: str


@dataclass(frozen=True, slots=True)
class Close:
    """Close the connection with this code (its own reason)."""

    code: CloseCode


@dataclass(frozen=True, slots=True)
class Closed:
    """The client closed the connection, with this code."""

    code: int


Action = Ack | Serve | Refuse | Close | Closed


@dataclass(slots=True)
class Plan:
    actions: list[Action] = field(default_factory=list)
    seen: bool = False  # a frame within the size limit came: a sign of life
    closed: bool = False  # the read ended with the client's close


def plan(
    events: Iterable[Mapping[str, Any]],
    *,
    max_bytes: int,
    take: Callable[[], bool],
    closing: bool = False,
) -> Plan:
    """The actions that serve `events`, in order. `take` asks the rate limiter for one
    frame (False: over the limit); `closing`: the connection closes already, so only
    the client's close is heeded."""
    builder = _Builder(max_bytes, take, closing)
    for event in events:
        builder.feed(event)
        if builder.out.closed:
            break
    builder.flush()
    return builder.out


def frame_text(event: Mapping[str, Any], max_bytes: int) -> str | None:
    """The text of a receive event (binary frames decoded as UTF-8); None when it is
    larger than `max_bytes`."""
    text = event.get("text")
    if text is None:
        raw = event.get("bytes") or b""
        if len(raw) > max_bytes:
            return None
        text = raw.decode("utf-8", "replace")
    return text if len(text) <= max_bytes else None


class _Builder:
    __slots__ = ("acks", "closing", "max_bytes", "out", "take")

    def __init__(self, max_bytes: int, take: Callable[[], bool], closing: bool) -> None:
        self.max_bytes = max_bytes
        self.take = take
        self.closing = closing
        self.acks: list[str] = []  # ids of ack frames not planned yet
        self.out = Plan()

    def feed(self, event: Mapping[str, Any]) -> None:
        if event["type"] == "websocket.disconnect":
            self.flush()
            self.out.actions.append(Closed(event.get("code", CloseCode.NORMAL)))
            self.out.closed = True
            return
        if self.closing:
            return  # what the client still sends is not served
        text = frame_text(event, self.max_bytes)
        if text is None:
            return self._close(CloseCode.TOO_BIG)
        self.out.seen = True
        if not self.take():
            return self._close(CloseCode.RATE_LIMITED)
        try:
            frame = parse(text)
            ids = ack_ids(frame) if frame["type"] == ClientFrame.ACK else None
        except FrameError as e:
            self.flush()
            self.out.actions.append(Refuse(e.frame()))
            return
        if ids is None:
            self.flush()
            self.out.actions.append(Serve(frame))
        elif len(self.acks) + len(ids) <= MAX_ACK_IDS:
            self.acks += ids
        else:
            self.flush()
            self.acks = list(ids)

    def flush(self) -> None:
        if self.acks:
            self.out.actions.append(Ack(self.acks))
            self.acks = []

    def _close(self, code: CloseCode) -> None:
        self.out.actions.append(Close(code))
        self.closing = True
