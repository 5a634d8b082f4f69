"""The per-batch forms of per-message bookkeeping give what the per-message ones give:
``observe_many`` the exposition text of one ``observe`` per amount, ``iso_ms`` (which
keeps the last second's text) the text of ``iso(ms(value))``."""

from __future__ import annotations

import random

import pytest
from prometheus_client import CollectorRegistry, Histogram

from delivery.message import iso, iso_ms, ms
from delivery.metrics import _LATENCY_BUCKETS, observe_many


def _histogram(registry: CollectorRegistry) -> Histogram:
    return Histogram("t_seconds", "test", buckets=_LATENCY_BUCKETS, registry=registry)


def _samples(registry: CollectorRegistry) -> dict[str, float]:
    return {
        f"{s.name}{sorted(s.labels.items())}": s.value
        for m in registry.collect()
        for s in m.samples
        if s.name.endswith(("_bucket", "_count"))
    }


def _sum(registry: CollectorRegistry) -> float:
    return registry.get_sample_value("t_seconds_sum") or 0.0


def test_observe_many_exposes_what_observe_does() -> None:
    rng = random.Random(7)
    amounts = [0.0, 0.001, 0.0025, 0.0011, 300.0, 301.0, 1e9, -1.0]  # bounds, +Inf, below all
    amounts += [rng.expovariate(20) for _ in range(2000)]
    one, many = CollectorRegistry(), CollectorRegistry()
    h1, h2 = _histogram(one), _histogram(many)
    for a in amounts:
        h1.observe(a)
    observe_many(h2, amounts[:1000])
    observe_many(h2, [])
    observe_many(h2, amounts[1000:])
    assert _samples(many) == _samples(one)  # every bucket and the count
    assert _sum(many) == pytest.approx(_sum(one), rel=1e-12)  # the sum, added in another order
    assert many.get_sample_value("t_seconds_bucket", {"le": "+Inf"}) == 2008


def test_iso_ms_is_iso_of_ms_in_any_order() -> None:
    rng = random.Random(3)
    values = [0, 1, 999, 1000, -1, -999, -1000, -1001, 1_764_590_000_999, 1_764_590_001_000]
    values += [rng.randrange(-(10**12), 4 * 10**12) for _ in range(20_000)]
    base = 1_764_590_000_000
    values += [base + rng.randrange(0, 3000) for _ in range(5_000)]  # mostly one second
    for v in values:
        assert iso_ms(v) == iso(ms(v)), v
