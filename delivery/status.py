"""Message statuses and their legal transitions.

::

    queued ──► sent ──► delivered
      ▲  │      │ └──► scheduled (retry) ──► queued
      │  │      │ └──► dead ──(operator replay)──► queued
      │  │      │        └──(a late ack)──► delivered
      │  │      └────► parked ──► sent / expired
      │  └──► parked, expired, cancelled
    scheduled (delayed) ──► queued, expired, cancelled

``delivered``, ``expired`` and ``cancelled`` are final: nothing changes them again.
``dead`` is final for Courier's retries; only an operator's explicit replay moves a
dead message back to ``queued`` for a fresh cycle of attempts, and an ack of one of
its attempts that arrives late (its edge stalled, Redis was full) marks it
``delivered`` and takes it out of the dead-letter stream.

The Lua scripts enforce the same table (see ``lua/_lib.lua``: ``allowed``); the
test ``tests/delivery/test_status.py`` checks that both agree.
"""

from __future__ import annotations

from enum import StrEnum

from .exceptions import IllegalTransition


class Status(StrEnum):
    QUEUED = "queued"
    SCHEDULED = "scheduled"
    SENT = "sent"
    DELIVERED = "delivered"
    PARKED = "parked"
    EXPIRED = "expired"
    DEAD = "dead"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        return self in FINAL


FINAL = frozenset({Status.DELIVERED, Status.EXPIRED, Status.CANCELLED})

TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.QUEUED: frozenset(
        {
            Status.SENT,
            Status.PARKED,
            Status.EXPIRED,
            Status.CANCELLED,
            Status.DELIVERED,
            Status.DEAD,
        }
    ),
    Status.SCHEDULED: frozenset(
        {Status.QUEUED, Status.EXPIRED, Status.CANCELLED, Status.DELIVERED, Status.DEAD}
    ),
    Status.SENT: frozenset(
        {
            Status.DELIVERED,
            Status.SCHEDULED,
            Status.PARKED,
            Status.QUEUED,
            Status.DEAD,
            Status.EXPIRED,
            Status.SENT,
        }
    ),
    Status.PARKED: frozenset(
        {Status.SENT, Status.EXPIRED, Status.CANCELLED, Status.DELIVERED, Status.QUEUED}
    ),
    Status.DEAD: frozenset({Status.QUEUED, Status.DELIVERED}),
    Status.DELIVERED: frozenset(),
    Status.EXPIRED: frozenset(),
    Status.CANCELLED: frozenset(),
}


def check_transition(old: Status, new: Status) -> None:
    """Raise :class:`IllegalTransition` unless ``old -> new`` is in the table."""
    if new not in TRANSITIONS[old]:
        raise IllegalTransition(f"a {old} message cannot become {new}")
