"""Retry delays: exponential backoff with jitter, as a pure function."""

from __future__ import annotations

import random

_rng = random.Random()


def backoff_seconds(
    attempt: int,
    *,
    base: float,
    cap: float,
    rand: float | None = None,
) -> float:
    """Delay before retry number ``attempt`` (1 = the first retry).

    "Equal jitter": half of ``min(cap, base * 2**(attempt-1))`` is fixed and the other
    half random, so delays grow with every attempt yet retries of messages that failed
    together spread out. ``rand`` in [0, 1) is taken from the module's RNG when omitted;
    tests pass it to get exact values.
    """
    if attempt < 1:
        raise ValueError("attempt starts at 1")
    r = _rng.random() if rand is None else rand
    ceiling = min(cap, base * 2.0 ** min(attempt - 1, 60))
    return ceiling / 2 + ceiling / 2 * r
