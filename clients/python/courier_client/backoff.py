"""Reconnect delays: exponential backoff with full jitter, reset only after a
connection stayed up (a server that accepts and then drops every connection must
not be hammered). Pure: the randomness and the clock come in from outside."""

from __future__ import annotations

import random
from collections.abc import Callable


def full_jitter(
    failures: int, *, base: float, cap: float, rand: Callable[[], float] = random.random
) -> float:
    """A delay uniform in ``[0, min(cap, base * 2**failures))`` (AWS's "full jitter")."""
    return rand() * min(cap, base * 2.0 ** min(failures, 64))


class Backoff:
    """The delay before each reconnect. ``up(now)`` when a connection is established,
    ``down(now)`` when it ends: the failures count again from zero only when it
    stayed up at least ``stable_after`` seconds."""

    def __init__(
        self,
        *,
        base: float = 0.5,
        cap: float = 20.0,
        stable_after: float = 5.0,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if base <= 0 or cap < base:
            raise ValueError("need 0 < base <= cap")
        self.base = base
        self.cap = cap
        self.stable_after = stable_after
        self.rand = rand
        self.failures = 0
        self._up_at: float | None = None

    def next_delay(self) -> float:
        delay = full_jitter(self.failures, base=self.base, cap=self.cap, rand=self.rand)
        self.failures += 1
        return delay

    def up(self, now: float) -> None:
        self._up_at = now

    def down(self, now: float) -> None:
        if self._up_at is not None and now - self._up_at >= self.stable_after:
            self.failures = 0
        self._up_at = None
