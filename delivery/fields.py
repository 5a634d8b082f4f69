"""The fields of every hash and stream entry Courier writes, with their meaning.

Beside the key table of :mod:`delivery.keys`: each enum below is the field list of one
kind of key, and the Lua prelude's constants are generated from them
(``MessageField.STATUS`` is ``F_STATUS`` in every script, ``EntryField.MESSAGE`` is
``ENTRY_MESSAGE`` ...; see :func:`lua_field_constants`), so Python and Lua cannot
disagree on a field. Each member is the field name (a ``str``) and carries its
meaning (``MessageField.STATUS.meaning``).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Self

from .keys import PARTITION_LAYOUT


class _Fields(StrEnum):
    """A field name with its meaning."""

    meaning: str

    def __new__(cls, value: str, meaning: str) -> Self:
        field = str.__new__(cls, value)
        field._value_ = value
        field.meaning = meaning
        return field


class MessageField(_Fields):
    """The message hash (key ``msg``, ``m:{id}``). Written by ``enqueue`` in one HSET;
    every later change (status, attempt, the next event) is one HSET too."""

    USER = "u", "the recipient's user id"
    PRIORITY = "p", "`high`, `normal` or `low`"
    PAYLOAD = "pl", "the payload, JSON"
    CREATED_AT = "ca", "enqueue time, server ms"
    EXPIRES_AT = "ea", "end of the ttl, server ms (a replay sets a fresh one)"
    TTL = "tl", "the ttl, ms, once replayed (before: `ea` - `ca`); what a replay starts again"
    MAX_ATTEMPTS = "ma", "attempts allowed before the message is dead"
    ATTEMPTS = "a", "attempts made: pushes to a device (absent until the first)"
    REPLY_REQUESTED = "rr", "`1` when the message asks for a reply (absent: it does not)"
    STATUS = "s", "the status (`delivery/status.py`)"
    EVENTS = "n", "how many timeline events there are (absent: 1)"
    EVENT = (
        "e",
        (
            "prefix: `eK` is event K of the timeline, JSON `{t (ms), e, a, ...}`; absent `e1`: "
            "queued at `ca`, attempt 0"
        ),
    )
    COLLAPSE_KEY = "ck", "the collapse key (only when given)"
    TOPIC = "tp", "the topic (only when given)"
    IDEMPOTENCY_KEY = "ik", "the idempotency key (only when given)"
    KEEP = "keep", "`1`: never collapsed away (a final task status; only when set)"
    LAST_ERROR = "le", "why the last attempt failed: retry or dead-letter reason"
    DEAD_LETTER = "dl", "the dead-letter entry id while the message is in the DLQ"
    DELIVERED_AT = "da", "ack time, server ms"
    ENTRY = (
        "en",
        (
            "its in-flight record while `sent`: the id of its pending entry in its priority "
            "stream, or `d` + the id in the drained stream"
        ),
    )
    REPLY = "rp", "the user's reply, JSON"
    ESCALATE_AFTER = "esa", "escalate after this many ms from enqueue (only when set)"
    ESCALATED_AT = "esc", "when `undelivered` fired, server ms (only then)"


class EntryField(_Fields):
    """A priority stream entry (key ``stream``, ``q:{priority}``): what a consumer
    needs to dispatch the message and build its frame without reading it back (entries
    of the ``drained`` stream hold only the first two)."""

    MESSAGE = "m", "the message id"
    USER = "u", "the recipient's user id"
    PAYLOAD = "pl", "the payload, JSON"
    CREATED_AT = "ca", "enqueue time, server ms"
    COLLAPSE_KEY = "ck", "the collapse key (only when given)"
    TOPIC = "tp", "the topic (only when given)"
    REPLY_REQUESTED = "rr", "`1` when the message asks for a reply (only then)"
    KEEP = "keep", "`1`: never collapsed away (only then)"


class DeadLetterField(_Fields):
    """A dead-letter stream entry (key ``dlq``)."""

    ID = "id", "the message id"
    USER = "u", "the recipient's user id"
    REASON = "reason", "why it died (`ack_timeout`, `poison` ...)"
    ATTEMPTS = "attempts", "attempts made"


class TaskField(_Fields):
    """A task hash (key ``task``)."""

    USER = "user_id", "the owner"
    ID = "task_id", "the task id (scoped by its owner)"
    STATUS = "status", "the latest status (`delivery/tasks.py`: TaskStatus)"
    DATA = "data", "the latest progress, message, result and error, JSON"
    CREATED_AT = "created_at", "first report, server ms"
    UPDATED_AT = "updated_at", "latest report, server ms"
    FINAL = "final", "`1` once the task ended: later reports are refused"
    MESSAGE_ID = "message_id", "the guaranteed message of the latest report"
    CANCEL_REQUESTED = "cancel_requested", "`1` once its owner asked to cancel it"


class ConnField(_Fields):
    """A live connection's hash (key ``conn``)."""

    USER = "user", "the user id"
    NODE = "node", "the node that holds the socket"
    CONNECTED_AT = "connected_at", "server ms"
    LAST_SEEN = "last_seen", "the latest presence refresh, server ms"
    DEVICE = "device", "what the client called its device (given by the edge)"
    ADDRESS = "address", "the client's address (given by the edge)"


class EventField(_Fields):
    """A lifecycle event (key ``events``): appended by the script that makes the change
    (delivery/events.py reads them; the event id is ``<partition>:<entry id>``)."""

    TYPE = "e", "`delivered`, `parked`, `expired`, `dead`, `replied`, `cancelled`, `undelivered`"
    MESSAGE = "id", "the message id"
    USER = "u", "the recipient's user id"
    AT = "t", "when it happened, server ms"
    ATTEMPT = "a", "the message's attempt then"
    CONN = "conn", "delivered, replied: the connection that acked or replied"
    NODE = "node", "delivered: the node that holds that connection"
    LATENCY = "lat", "delivered: enqueue to ack, ms"
    UNTIL = "until", "parked: the park expiry, server ms"
    REASON = "reason", "dead: why (`ack_timeout`, `poison` ...); cancelled: `collapsed`"
    BY = "by", "cancelled: the newer message with the same collapse key"
    REPLY = "rp", "replied: the reply, JSON"
    STATUS = "s", "undelivered: the message's status then"
    AFTER = "after", "undelivered: the escalation delay, ms"


class WebhookDeadField(_Fields):
    """A webhook delivery that used up its attempts (key ``wh_dlq``)."""

    ENDPOINT = "endpoint", "the endpoint id"
    EVENT = "event", "the event id (the `webhook-id` header)"
    BODY = "body", "the JSON body that was sent"
    ATTEMPTS = "attempts", "attempts made"
    ERROR = "error", "the last attempt's error"


TABLES: dict[type[_Fields], tuple[str, str]] = {
    MessageField: ("msg", "F_"),
    EntryField: ("stream", "ENTRY_"),
    DeadLetterField: ("dlq", "DLQ_"),
    TaskField: ("task", "TASK_"),
    ConnField: ("conn", "CONN_"),
    EventField: ("events", "EV_"),
    WebhookDeadField: ("wh_dlq", "WHD_"),
}
"""Each table's key (in :data:`delivery.keys.PARTITION_LAYOUT`) and its prefix in Lua
(``F_`` for the message hash, the one most scripts use)."""


def lua_field_constants() -> str:
    """One ``local <PREFIX><NAME> = '<field>'`` per field: a string constant costs
    nothing per call, and the prelude keeps only those a script names."""
    return "\n".join(
        f"local {prefix}{f.name} = {f.value!r}"
        for table, (_, prefix) in TABLES.items()
        for f in table
    )


def fields_markdown() -> str:
    """The tables as docs/architecture.md shows them (a test keeps the two equal)."""
    out: list[str] = []
    for table, (key, prefix) in TABLES.items():
        template = PARTITION_LAYOUT[key].template
        out += [f"`{table.__name__}`: key `{key}` (`{template}`)", ""]
        out += ["| field | Python | Lua | meaning |", "| --- | --- | --- | --- |"]
        out += [
            f"| `{f.value}` | `{table.__name__}.{f.name}` | `{prefix}{f.name}` | {f.meaning} |"
            for f in table
        ]
        out.append("")
    return "\n".join(out).rstrip("\n")
