"""The scripts the edge calls for a connection, as typed calls (see
:mod:`delivery.calls`): ``ack``/``ack_many``, ``unpark`` and ``reply``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, NamedTuple

from .calls import Push, codes
from .members import check_id
from .text import text


class AckCode(StrEnum):
    OK = "ok"  # delivered now
    DUPLICATE = "duplicate"  # delivered already
    FINAL = "final"  # expired or cancelled: nothing changes (a dead one is delivered)
    FORBIDDEN = "forbidden"  # another user's message
    UNKNOWN = "unknown"  # no such message (or not in this user's partition)


class ReplyCode(StrEnum):
    OK = "ok"
    UNKNOWN = "unknown"
    FORBIDDEN = "forbidden"
    NOT_REQUESTED = "not_requested"
    DUPLICATE = "duplicate"  # answered already


_ACK = codes(AckCode)
_REPLY = codes(ReplyCode)


Acked = tuple[AckCode, str | None, int | None]
"""One acknowledged id: (code, priority, enqueue-to-ack ms); the last two only for
``ok``. A plain tuple, as ``Dispatched`` (one per ack on the hot path)."""


class AckRequest(NamedTuple):
    """One ack frame (or consecutive ones) of a connection: its user, node and ids."""

    user_id: str
    conn_id: str
    node_id: str
    message_ids: Sequence[str]


class Unparked(NamedTuple):
    remaining: int  # parked messages left after this call
    pushes: list[Push]


# -- calls ------------------------------------------------------------------------------
# Every answer but ``ok`` carries nothing else: one shared Acked per code and spelling.
_BARE: dict[Any, Acked] = {k: (c, None, None) for k, c in _ACK.items() if c is not AckCode.OK}


def _acked(now_ms: int, reply: Sequence[Any]) -> list[Acked]:
    """``'ok|<priority>|<created ms>'`` or a bare code per id; the latency is the
    script's server time ``now_ms`` minus the creation time."""
    out = []
    for raw in reply:
        a = _BARE.get(raw)
        if a is None:
            code, _, rest = (raw if isinstance(raw, bytes) else raw.encode()).partition(b"|")
            prio, _, created = rest.partition(b"|")
            a = (_ACK[code], prio.decode(), now_ms - int(created))
        out.append(a)
    return out


@dataclass(frozen=True, slots=True)
class Ack:
    """``ack.lua``: one connection's ids; one answer per id, in order."""

    SCRIPT: ClassVar[str] = "ack"
    prefix: str
    frame: AckRequest
    retention_ms: int

    def args(self) -> list[Any]:
        f = self.frame
        return [f.user_id, f.conn_id, f.node_id, self.retention_ms, *f.message_ids]

    def parse(self, reply: Any) -> list[Acked]:
        return _acked(int(reply[0]), reply[1:])


@dataclass(frozen=True, slots=True)
class AckMany:
    """``ack_many.lua``: the frames of several connections (users of one partition);
    ARGV: the header, then per frame user, connection, node, n and the n ids. The
    reply is the server time, then every id's answer, frame after frame; parsed back
    into one list per frame."""

    SCRIPT: ClassVar[str] = "ack_many"
    prefix: str
    frames: Sequence[AckRequest]
    retention_ms: int

    def args(self) -> list[Any]:
        out: list[Any] = [self.retention_ms]
        for f in self.frames:
            out += (f.user_id, f.conn_id, f.node_id, len(f.message_ids), *f.message_ids)
        return out

    def parse(self, reply: Any) -> list[list[Acked]]:
        now, out, pos = int(reply[0]), [], 1
        for f in self.frames:
            n = len(f.message_ids)
            out.append(_acked(now, reply[pos : pos + n]))
            pos += n
        return out


@dataclass(frozen=True, slots=True)
class Unpark:
    """``unpark.lua``: the next parked messages for one connection. The reply: the
    number left, then 9 per message (id, attempt, priority, payload, created, collapse
    key, topic, reply requested, in-flight record)."""

    SCRIPT: ClassVar[str] = "unpark"
    prefix: str
    user_id: str
    node_id: str
    conn_id: str
    limit: int
    retention_ms: int

    def args(self) -> list[Any]:
        check_id(self.node_id, "node id")
        check_id(self.conn_id, "connection id")
        return [self.user_id, self.node_id, self.conn_id, self.limit, self.retention_ms]

    def parse(self, reply: Any) -> Unparked:
        pushes = []
        target = ((self.node_id, self.conn_id),)
        for i in range(1, len(reply), 9):
            mid, attempt, prio, payload, created, ck, tp, rr, record = reply[i : i + 9]
            pushes.append(
                Push(
                    id=text(mid),
                    user_id=self.user_id,
                    priority=text(prio),
                    attempt=int(attempt),
                    payload_json=payload,
                    created_ms=int(created),
                    collapse_key=text(ck) or None,
                    topic=text(tp) or None,
                    reply_requested=rr in (b"1", "1"),
                    targets=target,
                    record=text(record),
                )
            )
        return Unparked(int(reply[0]), pushes)


@dataclass(frozen=True, slots=True)
class Reply:
    """``reply.lua``: a user's answer to a message that asked for one."""

    SCRIPT: ClassVar[str] = "reply"
    prefix: str
    user_id: str
    conn_id: str
    message_id: str
    data: bytes  # JSON
    channel: str  # where whoever awaits the reply listens
    retention_ms: int

    def args(self) -> list[Any]:
        return [
            *(self.user_id, self.conn_id, self.message_id, self.data),
            *(self.channel, self.retention_ms),
        ]

    def parse(self, reply: Any) -> ReplyCode:
        return _REPLY[reply]
