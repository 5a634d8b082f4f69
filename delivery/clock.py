"""The clock, one seam (saq's ``now()``): every reading of the local clocks in
``delivery``, ``consumers`` and ``api``, and Redis server time as epoch ms.

Call through the module (``clock.monotonic()``, ``clock.wall_ms()``), never
``from delivery.clock import monotonic``: a test then freezes or steps the clock with
``monkeypatch.setattr(clock, "monotonic", lambda: t)`` instead of sleeping.
``monotonic`` and ``wall`` are ``time``'s own functions bound once, so a hot path pays
one attribute look-up for the seam and no extra call; ``wall_ms`` reads ``wall``, so
freezing ``wall`` freezes it too.

What the local clock is for: measuring intervals (``monotonic``: deadlines of a wait,
rate limits, heartbeats, latencies), and stamping what leaves the process (``wall``:
tokens, pongs, input checked against the present). Due times, deadlines and expiries
stored in Redis never come from here: the scripts read Redis ``TIME``, and Python code
that compares with stored times reads it too (:func:`server_ms`), so several processes
on several machines agree.
"""

from __future__ import annotations

import time
from typing import Any

monotonic = time.monotonic
"""Seconds of a clock that never goes back (intervals, deadlines of a wait)."""

wall = time.time
"""Seconds since the epoch, this machine's clock."""


def wall_ms() -> int:
    """Milliseconds since the epoch, this machine's clock."""
    return int(wall() * 1000)


def time_ms(reply: Any) -> int:
    """A Redis ``TIME`` reply (seconds, microseconds) as epoch ms."""
    sec, usec = reply
    return int(sec) * 1000 + int(usec) // 1000


async def server_ms(client: Any) -> int:
    """Redis server time as epoch ms (``client``: an asyncio Redis or cluster client)."""
    return time_ms(await client.time())
