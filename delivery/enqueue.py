"""Accepting a message: validation, then the ``enqueue``/``enqueue_many`` script calls.

:func:`build` checks one message against the :class:`Limits` before anything is
written (a refused message leaves no trace) and turns it into one :class:`Enqueue`
call per recipient. The producer (:mod:`delivery.producer`), the HTTP route and task
reports (:mod:`delivery.tasks`) all go through it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, NamedTuple

from pydantic import ValidationError as PydanticValidationError

from . import clock
from .exceptions import PayloadTooLarge, ValidationError
from .keys import EVENTS_MAX_LEN, USER_INDEX_CAP, Keyspace, partition_of
from .message import MessageIn, Priority, check_name, id_in, json_bytes
from .settings import Settings
from .text import text


@dataclass(frozen=True)
class Limits:
    """What a producer enforces; built from :class:`Settings` at the edge."""

    max_payload_bytes: int = 65536
    default_ttl_seconds: int = 604800
    max_ttl_seconds: int = 30 * 86400
    max_attempts: int = 5
    retention_seconds: int = 86400
    max_recipients: int = 1000
    escalate_after_seconds: float | None = None  # the default of escalate_after_seconds
    events_max_len: int = EVENTS_MAX_LEN  # 0: no lifecycle events (COURIER_EVENTS=false)
    sync_replicas: int = 0  # >0: WAIT for this many replicas (delivery/replication.py)
    sync_timeout_ms: int = 100

    @classmethod
    def from_settings(cls, s: Settings) -> Limits:
        return cls(
            max_payload_bytes=s.max_payload_bytes,
            default_ttl_seconds=s.default_ttl_seconds,
            max_ttl_seconds=s.max_ttl_seconds,
            max_attempts=s.max_attempts,
            retention_seconds=s.retention_seconds,
            max_recipients=s.max_recipients,
            escalate_after_seconds=s.escalate_after_seconds,
            events_max_len=s.events_max_len if s.events else 0,
            sync_replicas=s.sync_replicas,
            sync_timeout_ms=s.sync_timeout_ms,
        )


class EnqueueOptions(NamedTuple):
    """``enqueue.lua``'s arguments 4 to 17, in order (one option set of
    ``enqueue_many.lua``): shared by all the recipients of a message, and by the
    messages of a batch that have the same options (a tuple: hashable, cheap)."""

    priority: str
    ttl_ms: int
    delay_ms: int  # -1: none
    deliver_at_ms: int  # -1: none
    max_attempts: int
    idempotency_key: str  # "": none (as the three below)
    collapse_key: str
    topic: str
    reply_requested: str  # "1" / "0"
    retention_ms: int
    index_ttl_ms: int  # the user's index and counters live at least this long
    index_cap: int  # USER_INDEX_CAP
    keep: str  # "1": never collapsed away (a final task status)
    escalate_ms: int  # -1: none; else `undelivered` when not acked this long after due


class Accepted(NamedTuple):
    """The answer of ``enqueue`` for one recipient, as the producer gives it back
    (immutable; a NamedTuple: one per message of a batch, where a frozen dataclass cost
    the producer a microsecond each)."""

    id: str  # the new message's, or the one its idempotency key already had
    user_id: str
    status: str  # a Status; "unknown" when a repeated idempotency key's message is gone
    created: bool = True  # False: a repeat of an idempotency key (or of this very call)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "user_id": self.user_id, "status": self.status}


@dataclass(slots=True)  # not frozen: one per recipient, and frozen costs 3x to build
class Enqueue:
    """``enqueue.lua``: one recipient's message."""

    SCRIPT: ClassVar[str] = "enqueue"
    prefix: str
    id: str
    user_id: str
    payload: bytes
    opts: EnqueueOptions
    reservation: str | None = None  # KEYS[2]: see delivery.producer.reserve

    def args(self) -> list[Any]:
        return [self.id, self.user_id, self.payload, *self.opts]

    def parse(self, reply: Any) -> Accepted:
        mid, status, created = reply
        return Accepted(text(mid), self.user_id, text(status), int(created) == 1)


@dataclass(frozen=True, slots=True)
class EnqueueMany:
    """``enqueue_many.lua``: several messages of one partition. ARGV: k, then the k
    distinct option sets (14 each), then 4 per message: id, user, payload, the number
    of its option set. The reply: per message its status, or ``=<id>|<status>`` for a
    repeat (see the script)."""

    SCRIPT: ClassVar[str] = "enqueue_many"
    prefix: str
    calls: Sequence[Enqueue]
    reservation: str | None = None  # KEYS[2]: see delivery.producer.reserve

    def args(self) -> list[Any]:
        return many_args(self.calls)

    def parse(self, reply: Any) -> list[Accepted]:
        out = []
        for c, r in zip(self.calls, reply, strict=True):
            s = _STATUS.get(r)
            if s is not None:  # created
                out.append(Accepted(c.id, c.user_id, s, True))
                continue
            mid, _, status = text(r)[1:].partition("|")  # a repeat: '=<id>|<status>'
            out.append(Accepted(mid, c.user_id, status, False))
        return out


# what a created message answers, as bytes and text
_STATUS = {k: s for s in ("queued", "scheduled") for k in (s, s.encode())}


def many_args(calls: Sequence[Enqueue]) -> list[Any]:
    """``enqueue_many``'s arguments: the distinct option sets, then 4 per message (a
    batch's messages mostly share their options: 4 arguments each instead of 17)."""
    sets: dict[tuple[Any, ...], int] = {}
    rows: list[Any] = []
    for c in calls:
        n = sets.get(c.opts)
        if n is None:
            n = sets[c.opts] = len(sets) + 1
        rows += (c.id, c.user_id, c.payload, n)
    args: list[Any] = [len(sets)]
    for opts in sets:
        args += opts
    args += rows
    return args


_PLAIN = frozenset({"user_id", "payload"})


@functools.cache
def _default_options(limits: Limits, keep: bool) -> EnqueueOptions:
    """The options of a message that gives none (see :func:`build`)."""
    return EnqueueOptions(
        str(Priority.NORMAL),
        limits.default_ttl_seconds * 1000,
        -1,
        -1,
        limits.max_attempts,
        "",
        "",
        "",
        "0",
        limits.retention_seconds * 1000,
        (limits.max_ttl_seconds + limits.retention_seconds) * 1000,
        USER_INDEX_CAP,
        "1" if keep else "0",
        _escalate_ms(None, limits.escalate_after_seconds),
    )


def _plain(msg: Any, keyspace: Keyspace, limits: Limits, keep: bool) -> list[Enqueue] | None:
    """The calls of the commonest message, a dict of a valid ``user_id`` and a
    payload and nothing else, checked as :class:`MessageIn` checks them (its own
    ``check_name``) without building the model, which cost a producer more than the
    rest of an enqueue together; None for anything else (and for anything invalid, so
    that the model says what is wrong)."""
    if type(msg) is not dict or msg.keys() != _PLAIN:
        return None
    user, value = msg["user_id"], msg["payload"]
    if type(user) is not str or value is None:
        return None
    try:
        check_name(user, "user_id")
    except ValueError:
        return None
    if limits.default_ttl_seconds > limits.max_ttl_seconds:
        return None  # the model path says so
    payload = json_bytes(value, "payload")
    if len(payload) > limits.max_payload_bytes:
        raise PayloadTooLarge(
            f"payload is {len(payload)} bytes; the limit is {limits.max_payload_bytes}"
        )
    p = partition_of(user, keyspace.partitions)
    return [Enqueue(keyspace.part(p), id_in(p), user, payload, _default_options(limits, keep))]


def build(
    msg: MessageIn | dict[str, Any], *, keyspace: Keyspace, limits: Limits, keep: bool = False
) -> list[Enqueue]:
    """Validate one message and turn it into one script call per recipient."""
    plain = _plain(msg, keyspace, limits, keep)
    if plain is not None:
        return plain
    if not isinstance(msg, MessageIn):
        try:
            msg = MessageIn.model_validate(msg)
        except PydanticValidationError as e:
            raise ValidationError(first_error(e)) from None
    payload = json_bytes(msg.payload, "payload")
    if len(payload) > limits.max_payload_bytes:
        raise PayloadTooLarge(
            f"payload is {len(payload)} bytes; the limit is {limits.max_payload_bytes}"
        )
    ttl = msg.ttl_seconds if msg.ttl_seconds is not None else limits.default_ttl_seconds
    if ttl > limits.max_ttl_seconds:
        raise ValidationError(f"ttl_seconds may be at most {limits.max_ttl_seconds}")
    if msg.delay_seconds is not None and msg.delay_seconds >= ttl:
        raise ValidationError("delay_seconds must be shorter than ttl_seconds")
    deliver_at = _epoch_ms(msg.deliver_at) if msg.deliver_at is not None else -1
    # (the local clock only validates here; due times come from Redis server time)
    if deliver_at != -1 and deliver_at - clock.wall_ms() >= ttl * 1000:
        raise ValidationError("deliver_at must come before the message expires (ttl_seconds)")
    targets = msg.targets()
    if len(targets) > limits.max_recipients:
        raise ValidationError(f"at most {limits.max_recipients} recipients per message")
    opts = EnqueueOptions(  # positional: a message's cheapest way to its options
        str(Priority(msg.priority)),  # priority
        ttl * 1000,  # ttl_ms
        int(msg.delay_seconds * 1000) if msg.delay_seconds is not None else -1,  # delay_ms
        deliver_at,  # deliver_at_ms
        msg.max_attempts or limits.max_attempts,  # max_attempts
        msg.idempotency_key or "",  # idempotency_key
        msg.collapse_key or "",  # collapse_key
        msg.topic or "",  # topic
        "1" if msg.reply_requested else "0",  # reply_requested
        limits.retention_seconds * 1000,  # retention_ms
        (limits.max_ttl_seconds + limits.retention_seconds) * 1000,  # index_ttl_ms
        USER_INDEX_CAP,  # index_cap
        "1" if keep else "0",  # keep
        _escalate_ms(msg.escalate_after_seconds, limits.escalate_after_seconds),  # escalate_ms
    )
    calls = []
    for u in targets:
        p = partition_of(u, keyspace.partitions)  # once: it names both the keys and the id
        calls.append(Enqueue(keyspace.part(p), id_in(p), u, payload, opts))
    return calls


def _escalate_ms(own: float | None, default: float | None) -> int:
    after = own if own is not None else default
    return -1 if after is None else max(int(after * 1000), 1)


def _epoch_ms(dt: datetime) -> int:
    if dt.tzinfo is None:
        raise ValidationError("deliver_at needs a time zone (e.g. 2026-01-01T10:00:00Z)")
    return int(dt.timestamp() * 1000)


def first_error(e: PydanticValidationError) -> str:
    """The first of pydantic's errors as one line (``where: what``)."""
    err = e.errors()[0]
    where = ".".join(str(x) for x in err["loc"]) or "body"
    return f"{where}: {err['msg']}"
