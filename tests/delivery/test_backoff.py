from __future__ import annotations

import pytest

from delivery.backoff import backoff_seconds


@pytest.mark.parametrize(
    ("attempt", "ceiling"),
    [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (6, 10.0), (40, 10.0), (10_000, 10.0)],
)
def test_equal_jitter_stays_between_half_the_ceiling_and_the_ceiling(
    attempt: int, ceiling: float
) -> None:
    kw = {"base": 0.5, "cap": 10.0}
    assert backoff_seconds(attempt, rand=0.0, **kw) == pytest.approx(ceiling / 2)
    assert backoff_seconds(attempt, rand=0.5, **kw) == pytest.approx(ceiling * 0.75)
    assert backoff_seconds(attempt, rand=0.999999, **kw) == pytest.approx(ceiling, rel=1e-5)
    for _ in range(200):
        assert ceiling / 2 <= backoff_seconds(attempt, **kw) < ceiling + 1e-9


def test_delays_grow_until_the_cap() -> None:
    lows = [backoff_seconds(a, base=1, cap=900, rand=0.0) for a in range(1, 15)]
    assert lows[:4] == [0.5, 1.0, 2.0, 4.0]
    assert lows == sorted(lows) and lows[-1] == 450.0
    # The shortest delay of one attempt is never below the longest of two attempts before.
    for a in range(3, 11):
        assert backoff_seconds(a, base=1, cap=900, rand=0.0) >= backoff_seconds(
            a - 2, base=1, cap=900, rand=0.999
        )


def test_attempt_numbers_start_at_one() -> None:
    with pytest.raises(ValueError):
        backoff_seconds(0, base=1, cap=10)
