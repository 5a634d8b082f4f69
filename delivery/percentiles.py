"""Percentiles, one definition for the admin stats (``GET /v1/admin/users/{id}/stats``:
the p95 of a user's enqueue-to-ack samples) and the benchmarks' reports."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeVar

N = TypeVar("N", int, float)


def percentile(ordered: Sequence[N], q: float) -> N | None:
    """The nearest-rank percentile of values sorted ascending: the smallest value with
    at least ``q`` % (0 to 100) of them at or below it; None when there are none.

    Sorting is the caller's: a report that reads many percentiles sorts once."""
    if not 0 <= q <= 100:
        raise ValueError(f"a percentile is between 0 and 100, not {q}")
    if not ordered:
        return None
    rank = max(1, math.ceil(q * len(ordered) / 100))
    return ordered[rank - 1]
