"""The one percentile (delivery/percentiles.py): nearest rank, as the admin stats and
the benchmark reports show it."""

from __future__ import annotations

import pytest

from bench.report import cdf_points, latency_summary
from delivery.percentiles import percentile

VALUES = [15, 20, 35, 40, 50]  # the textbook nearest-rank example


@pytest.mark.parametrize(
    ("q", "expect"), [(0, 15), (5, 15), (30, 20), (40, 20), (50, 35), (95, 50), (100, 50)]
)
def test_nearest_rank(q: float, expect: int) -> None:
    assert percentile(VALUES, q) == expect


def test_no_values_and_out_of_range() -> None:
    assert percentile([], 50) is None
    with pytest.raises(ValueError, match="between 0 and 100"):
        percentile(VALUES, 101)


def test_exact_ranks_do_not_round_up() -> None:
    hundred = list(range(1, 101))
    assert [percentile(hundred, q) for q in (1, 50, 95, 99)] == [1, 50, 95, 99]
    twenty = list(range(1, 21))
    assert percentile(twenty, 95) == 19


def test_the_bench_reports_use_it() -> None:
    ms = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert latency_summary(ms) == {"p50": 3.0, "p95": 5.0, "p99": 5.0, "max": 5.0}
    assert latency_summary([]) == {"p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0}
    assert cdf_points(ms, n=4) == [1.0, 2.0, 3.0, 4.0, 5.0]
