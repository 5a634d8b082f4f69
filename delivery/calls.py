"""Each Lua script's arguments and answer as one typed object (the Python side of the
boundary whose Lua side names its ARGV in the first lines of ``lua/<script>.lua``).

A call object holds ``prefix`` (``KEYS[1]``, the partition prefix) and the script's
arguments under the names the script gives them; ``args()`` lays them out as ARGV
and ``parse(reply)`` turns the script's reply into typed values, with an enum for
every outcome string. ``Scripts.run(call)`` runs one; ``Scripts.call(call)`` is the
(script, keys, args) triple that ``Scripts.pipelined`` sends. Here: the
consumers' (dispatch, reclaim, retry), the scheduler's (promote, expire, trim, escalate) and the
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
    SENT = "sent"  # pushed to the user's live connections: status sent, entry pending
    PARKED = "parked"  # the user has no live connection
    EXPIRED = "expired"  # its ttl passed on the way
    SKIP = "skip"  # nothing to do: the message moved on, was collapsed, or is gone


class RetryOutcome(StrEnum):
    SCHEDULED = "scheduled"  # due again after its backoff delay
    DEAD = "dead"  # attempts used up: in the dead-letter stream
    EXPIRED = "expired"  # its ttl would pass first
    SKIP = "skip"  # no longer sent (acked, handed back), or sent again since


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
_SENT = (b"sent", "sent")


# -- what the scripts act on and answer ------------------------------------------------
@dataclass(slots=True)  # one per message read: not frozen, which costs 3x to build
class Entry:
    """One stream entry read by a consumer, with what the message frame needs (the
    entry carries it, see :class:`delivery.fields.EntryField`)."""

    partition: int
    priority: str
    entry_id: str
    message_id: str
    user_id: str
    payload_json: bytes = b"null"
    created_ms: int = 0
    collapse_key: str | None = None
    topic: str | None = None
    reply_requested: bool = False
    keep: bool = False  # never collapsed away

    @property
    def collapse_check(self) -> str:
        """The collapse key dispatch checks ('' when none, or never collapsed away)."""
        return "" if self.keep or not self.collapse_key else self.collapse_key


@dataclass(slots=True)  # one per message sent: not frozen, as Entry
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
    record: str = ""  # its in-flight record (MessageField.ENTRY); '': not known

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
    """A sent message whose in-flight record waited past the ack timeout."""

    id: str
    record: str  # its in-flight record (MessageField.ENTRY)
    attempts: int


class Reclaimed(NamedTuple):
    """What ``reclaim.lua`` found pending past the ack timeout in one partition."""

    cursors: tuple[str, ...]  # how each stream's next scan goes on ('': its front only)
    overdue: list[Overdue]  # to retry
    # to dispatch: (priority, entry id, deliveries counted, fields)
    entries: list[tuple[str, str, int, dict[bytes, bytes]]]
    buried: list[tuple[str, str]]  # poison (entry id, message id), dead-lettered


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
    """The flat answer of dispatch_many: per entry ``sent, attempt, k, k conn members``
    or ``parked`` or ``expired`` or ``skip, status``."""
    out: list[Dispatched] = []
    pos = 0
    for e in entries:
        word = reply[pos]
        if word in _SENT:
            k = int(reply[pos + 2])
            push = Push(
                e.message_id,
                e.user_id,
                e.priority,
                int(reply[pos + 1]),
                e.payload_json,
                e.created_ms,
                e.collapse_key,
                e.topic,
                e.reply_requested,
                tuple(parse_conn_member(m) for m in reply[pos + 3 : pos + 3 + k]),
                e.entry_id,
            )
            out.append((e, DispatchOutcome.SENT, push))
            pos += 3 + k
            continue
        outcome = _DISPATCH[word]
        out.append((e, outcome, None))
        pos += 2 if outcome is DispatchOutcome.SKIP else 1
    return out


# -- consumers -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Dispatch:
    """``dispatch.lua``: one read entry."""

    SCRIPT: ClassVar[str] = "dispatch"
    prefix: str
    entry: Entry
    heartbeat_timeout_ms: int
    park_ttl_ms: int
    retention_ms: int

    def args(self) -> list[Any]:
        e = self.entry
        return [
            *(e.entry_id, e.message_id, e.user_id, e.priority, e.collapse_check),
            *(self.heartbeat_timeout_ms, self.park_ttl_ms, self.retention_ms),
        ]

    def parse(self, reply: Any) -> Dispatched:
        return _dispatched([self.entry], reply)[0]


@dataclass(frozen=True, slots=True)
class DispatchMany:
    """``dispatch_many.lua``: entries of one partition; ARGV: the header, then 5 per
    entry (entry id, message id, user, priority, collapse key to check); the answers of
    all entries in one flat list, in order."""

    SCRIPT: ClassVar[str] = "dispatch_many"
    prefix: str
    entries: Sequence[Entry]
    heartbeat_timeout_ms: int
    park_ttl_ms: int
    retention_ms: int

    def args(self) -> list[Any]:
        out: list[Any] = [self.heartbeat_timeout_ms, self.park_ttl_ms, self.retention_ms]
        for e in self.entries:
            out += (e.entry_id, e.message_id, e.user_id, e.priority, e.collapse_check)
        return out

    def parse(self, reply: Any) -> list[Dispatched]:
        return _dispatched(self.entries, reply)


@dataclass(frozen=True, slots=True)
class Reclaim:
    """``reclaim.lua``: claim what has been pending past the ack timeout in one
    partition and sort it out (see the script)."""

    SCRIPT: ClassVar[str] = "reclaim"
    prefix: str
    consumer: str
    min_idle_ms: int  # the ack timeout
    count: int  # entries claimed per stream at most
    poison_deliveries: int
    dlq_max_len: int
    dead_keep_ms: int
    # how each stream is scanned (high .. drained): '' the front, else a full scan
    cursors: tuple[str, str, str, str] = ("", "", "", "")

    def args(self) -> list[Any]:
        return [
            *(self.consumer, self.min_idle_ms, self.count, self.poison_deliveries),
            *(self.dlq_max_len, self.dead_keep_ms, *self.cursors),
        ]

    def parse(self, reply: Any) -> Reclaimed:
        cursors = tuple(text(c) for c in reply[:4])
        pos = 4
        n = int(reply[pos])
        overdue = [
            Overdue(text(reply[i]), text(reply[i + 1]), int(reply[i + 2]))
            for i in range(pos + 1, pos + 1 + 3 * n, 3)
        ]
        pos += 1 + 3 * n
        entries = []
        for _ in range(int(reply[pos])):
            prio, entry = text(reply[pos + 1]), text(reply[pos + 2])
            deliveries, k = int(reply[pos + 3]), int(reply[pos + 4])
            items = reply[pos + 5 : pos + 5 + k]
            fields = dict(zip(items[::2], items[1::2], strict=True))
            entries.append((prio, entry, deliveries, fields))
            pos += 4 + k
        pos += 1
        buried = [
            (text(reply[i]), text(reply[i + 1]))
            for i in range(pos + 1, pos + 1 + 2 * int(reply[pos]), 2)
        ]
        return Reclaimed(cursors, overdue, entries, buried)


@dataclass(frozen=True, slots=True)
class Retry:
    """``retry.lua``: ARGV: the header, then 3 per message (id, its in-flight record or
    '' for whichever it has, delay ms); one outcome per message, in order."""

    SCRIPT: ClassVar[str] = "retry"
    prefix: str
    reason: str
    retention_ms: int
    dlq_max_len: int
    dead_keep_ms: int
    delays: Sequence[tuple[str, str, int]]  # (message id, in-flight record, delay ms)

    def args(self) -> list[Any]:
        out: list[Any] = [self.reason, self.retention_ms, self.dlq_max_len, self.dead_keep_ms]
        for mid, record, delay_ms in self.delays:
            out += (mid, record, delay_ms)
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
class Trim:
    """``trim.lua``: drop the entries every consumer is done with; answers the lengths
    of the streams (high, normal, low, drained) afterwards."""

    SCRIPT: ClassVar[str] = "trim"
    prefix: str

    def args(self) -> list[Any]:
        return []

    def parse(self, reply: Any) -> list[int]:
        return [int(n) for n in reply]


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
