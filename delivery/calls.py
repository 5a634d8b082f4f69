"""Each Lua script's arguments and answer as one typed object (the Python side of the
boundary whose Lua side names its ARGV in the first lines of ``lua/<script>.lua``).

A call object holds ``prefix`` (``KEYS[1]``, the partition prefix) and the script's
arguments under the names the script gives them; ``args()`` lays them out as ARGV
and ``parse(reply)`` turns the script's reply into typed values, with an enum for
every outcome string. ``Scripts.run(call)`` runs one; ``Scripts.call(call)`` is the
(script, keys, args) triple that ``Scripts.pipelined`` sends. Here: the
consumers' (dispatch, bury), the scheduler's (due, retry, promote, expire, escalate) and the
operators' (replay, purge). The others sit beside what calls them: the edge's (ack,
unpark, reply) in :mod:`delivery.edge_calls`, ``enqueue``/``enqueue_many`` in
:mod:`delivery.enqueue`, ``task``/``cancel`` in :mod:`delivery.tasks`, the presence
scripts in :mod:`delivery.presence`.

Batch calls and replies are flat lists (every argument is one Lua string, every reply
one array); the per-item layout is in each class's docstring and script header.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, NamedTuple, Protocol, TypeVar

from .members import parse_conn_member
from .message import message_frame
from .status import Status
from .text import text

A_co = TypeVar("A_co", covariant=True)
E = TypeVar("E", bound=StrEnum)


class ScriptCall(Protocol[A_co]):
    """What every call object offers (see the module docstring)."""

    SCRIPT: ClassVar[str]

    @property
    def prefix(self) -> str: ...  # KEYS[1]

    def args(self) -> list[Any]: ...

    def parse(self, reply: Any) -> A_co: ...


def codes(enum: type[E]) -> dict[str | bytes, E]:
    """A reply string (bytes or str) -> member, faster than calling the enum."""
    return {k: m for m in enum for k in (m.value, m.value.encode())}


# -- outcomes --------------------------------------------------------------------------
class DispatchOutcome(StrEnum):
    SENT = "sent"  # pushed to the user's live connections: status sent, ack deadline set
    PARKED = "parked"  # the user has no live connection
    EXPIRED = "expired"  # its ttl passed on the way
    SKIP = "skip"  # nothing to do: the message moved on, was collapsed, or is gone


class RetryOutcome(StrEnum):
    SCHEDULED = "scheduled"  # due again after its backoff delay
    DEAD = "dead"  # attempts used up: in the dead-letter stream
    EXPIRED = "expired"  # its ttl would pass first
    SKIP = "skip"  # not sent, or its deadline has not passed (nothing changed)


class ReplayCode(StrEnum):
    REPLAYED = "replayed"  # queued again with a fresh cycle of attempts
    UNKNOWN = "unknown"
    NOT_DEAD = "not_dead"  # (not on the wire: the script answers the status it found)


class PurgeCode(StrEnum):
    PURGED = "purged"
    UNKNOWN = "unknown"
    NOT_LISTED = "not_listed"  # not dead, or dead without an entry (the script answers
    # the status it found)


_DISPATCH = codes(DispatchOutcome)
_RETRY = codes(RetryOutcome)


# -- what the scripts act on and answer ------------------------------------------------
@dataclass(frozen=True)
class Entry:
    """One stream entry read by a consumer."""

    partition: int
    priority: str
    entry_id: str
    message_id: str
    user_id: str


@dataclass(frozen=True)
class Push:
    """A message on its way to one or more connections of its user."""

    id: str
    user_id: str
    priority: str
    attempt: int
    payload_json: bytes
    created_ms: int
    collapse_key: str | None = None
    topic: str | None = None
    reply_requested: bool = False
    targets: tuple[tuple[str, str], ...] = field(default_factory=tuple)  # (node, conn)

    def frame(self) -> bytes:
        return message_frame(
            message_id=self.id,
            priority=self.priority,
            payload_json=self.payload_json,
            created_ms=self.created_ms,
            attempt=self.attempt,
            collapse_key=self.collapse_key,
            topic=self.topic,
            reply_requested=self.reply_requested,
        )


Dispatched = tuple[Entry, DispatchOutcome, Push | None]
"""One entry's dispatch: (entry, outcome, the push when it was sent). A plain tuple:
one per message on the hottest path, where a NamedTuple cost 20% more CPU (it is
never untracked by the garbage collector)."""


class Overdue(NamedTuple):
    """A sent message whose ack deadline passed."""

    id: str
    attempts: int
    max_attempts: int


class Promoted(NamedTuple):
    moved: int
    next_due_ms: int  # -1: nothing delayed


class ReplayAnswer(NamedTuple):
    code: ReplayCode
    status: Status | None = None  # the status found, for NOT_DEAD


class PurgeAnswer(NamedTuple):
    code: PurgeCode
    status: Status | None = None  # the status found, for NOT_LISTED


def _dispatched(entries: Sequence[Entry], reply: Sequence[Any]) -> list[Dispatched]:
    """The answers of dispatch_one, one per entry: ``{'sent', attempt, payload, created,
    collapse key, topic, reply requested, conn members...}`` or ``{outcome, ...}``."""
    out = []
    for e, row in zip(entries, reply, strict=True):
        outcome = _DISPATCH[row[0]]
        push = None
        if outcome is DispatchOutcome.SENT:
            push = Push(
                id=e.message_id,
                user_id=e.user_id,
                priority=e.priority,
                attempt=int(row[1]),
                payload_json=row[2],
                created_ms=int(row[3]),
                collapse_key=text(row[4]) or None,
                topic=text(row[5]) or None,
                reply_requested=row[6] in (b"1", "1"),
                targets=tuple(parse_conn_member(m) for m in row[7:]),
            )
        out.append((e, outcome, push))
    return out


# -- consumers -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Dispatch:
    """``dispatch.lua``: one read entry."""

    SCRIPT: ClassVar[str] = "dispatch"
    prefix: str
    entry: Entry
    group: str
    ack_timeout_ms: int
    heartbeat_timeout_ms: int
    park_ttl_ms: int
    retention_ms: int

    def args(self) -> list[Any]:
        e = self.entry
        return [
            *(e.entry_id, e.message_id, e.user_id, e.priority, self.group),
            *(self.ack_timeout_ms, self.heartbeat_timeout_ms, self.park_ttl_ms),
            self.retention_ms,
        ]

    def parse(self, reply: Any) -> Dispatched:
        return _dispatched([self.entry], [reply])[0]


@dataclass(frozen=True, slots=True)
class DispatchMany:
    """``dispatch_many.lua``: entries of one partition; ARGV: the header, then 4 per
    entry (entry id, message id, user, priority); one answer per entry, in order."""

    SCRIPT: ClassVar[str] = "dispatch_many"
    prefix: str
    entries: Sequence[Entry]
    group: str
    ack_timeout_ms: int
    heartbeat_timeout_ms: int
    park_ttl_ms: int
    retention_ms: int

    def args(self) -> list[Any]:
        out: list[Any] = [
            *(self.group, self.ack_timeout_ms, self.heartbeat_timeout_ms),
            *(self.park_ttl_ms, self.retention_ms),
        ]
        for e in self.entries:
            out += (e.entry_id, e.message_id, e.user_id, e.priority)
        return out

    def parse(self, reply: Any) -> list[Dispatched]:
        return _dispatched(self.entries, reply)


@dataclass(frozen=True, slots=True)
class Bury:
    """``bury.lua``: a poison entry; answers the message's status afterwards (None: its
    hash is gone)."""

    SCRIPT: ClassVar[str] = "bury"
    prefix: str
    entry: Entry
    group: str
    reason: str
    dlq_max_len: int
    dead_keep_ms: int

    def args(self) -> list[Any]:
        e = self.entry
        return [
            *(e.entry_id, e.message_id, e.user_id, e.priority, self.group, self.reason),
            *(self.dlq_max_len, self.dead_keep_ms),
        ]

    def parse(self, reply: Any) -> Status | None:
        s = text(reply)
        return None if s == "gone" else Status(s)


@dataclass(frozen=True, slots=True)
class Due:
    """``due.lua`` (read only); the reply is flat: id, attempts, max attempts, ..."""

    SCRIPT: ClassVar[str] = "due"
    prefix: str
    limit: int

    def args(self) -> list[Any]:
        return [self.limit]

    def parse(self, reply: Any) -> list[Overdue]:
        return [
            Overdue(text(reply[i]), int(reply[i + 1]), int(reply[i + 2]))
            for i in range(0, len(reply), 3)
        ]


@dataclass(frozen=True, slots=True)
class Retry:
    """``retry.lua``: ARGV: the header, then 2 per message (id, delay ms); one outcome
    per message, in order."""

    SCRIPT: ClassVar[str] = "retry"
    prefix: str
    reason: str
    force: bool  # do not require the ack deadline to have passed
    retention_ms: int
    dlq_max_len: int
    dead_keep_ms: int
    delays: Sequence[tuple[str, int]]  # (message id, delay ms)

    def args(self) -> list[Any]:
        out: list[Any] = [
            *(self.reason, "1" if self.force else "0", self.retention_ms),
            *(self.dlq_max_len, self.dead_keep_ms),
        ]
        for mid, delay_ms in self.delays:
            out += (mid, delay_ms)
        return out

    def parse(self, reply: Any) -> list[RetryOutcome]:
        return [_RETRY[c] for c in reply]


@dataclass(frozen=True, slots=True)
class Promote:
    """``promote.lua``: delayed messages that are due go to their stream."""

    SCRIPT: ClassVar[str] = "promote"
    prefix: str
    limit: int
    retention_ms: int

    def args(self) -> list[Any]:
        return [self.limit, self.retention_ms]

    def parse(self, reply: Any) -> Promoted:
        moved, nxt = reply
        return Promoted(int(moved), int(float(nxt)))


@dataclass(frozen=True, slots=True)
class Expire:
    """``expire.lua``: parked messages whose time ran out; answers how many."""

    SCRIPT: ClassVar[str] = "expire"
    prefix: str
    limit: int
    retention_ms: int

    def args(self) -> list[Any]:
        return [self.limit, self.retention_ms]

    def parse(self, reply: Any) -> int:
        return int(reply)


@dataclass(frozen=True, slots=True)
class Escalate:
    """``escalate.lua``: messages not acked by their escalation time get `undelivered`;
    answers how many."""

    SCRIPT: ClassVar[str] = "escalate"
    prefix: str
    limit: int

    def args(self) -> list[Any]:
        return [self.limit]

    def parse(self, reply: Any) -> int:
        return int(reply)


# -- operators -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Replay:
    """``replay.lua``: a dead message gets a fresh cycle of attempts."""

    SCRIPT: ClassVar[str] = "replay"
    prefix: str
    message_id: str
    retention_ms: int
    by: str  # the operator

    def args(self) -> list[Any]:
        return [self.message_id, self.retention_ms, self.by]

    def parse(self, reply: Any) -> ReplayAnswer:
        s = text(reply)
        if s in (ReplayCode.REPLAYED, ReplayCode.UNKNOWN):
            return ReplayAnswer(ReplayCode(s))
        return ReplayAnswer(ReplayCode.NOT_DEAD, Status(s))


@dataclass(frozen=True, slots=True)
class Purge:
    """``purge.lua``: a dead message leaves the dead-letter stream (it stays dead)."""

    SCRIPT: ClassVar[str] = "purge"
    prefix: str
    message_id: str

    def args(self) -> list[Any]:
        return [self.message_id]

    def parse(self, reply: Any) -> PurgeAnswer:
        s = text(reply)
        if s in (PurgeCode.PURGED, PurgeCode.UNKNOWN):
            return PurgeAnswer(PurgeCode(s))
        return PurgeAnswer(PurgeCode.NOT_LISTED, Status(s))
