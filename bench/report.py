"""A scenario's result: the JSON object of ``--json`` and the table printed at the end."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from delivery.percentiles import percentile

out = Console(highlight=False)


def _at(ordered: Sequence[float], q: float) -> float:
    """The percentile rounded for the report (0 when there are no values)."""
    return round(float(percentile(ordered, q) or 0.0), 3)


def latency_summary(values: Sequence[float]) -> dict[str, float]:
    s = sorted(values)
    return {"p50": _at(s, 50), "p95": _at(s, 95), "p99": _at(s, 99), "max": _at(s, 100)}


def cdf_points(values: Sequence[float], n: int = 200) -> list[float]:
    """``n + 1`` quantiles (0 to 100 %), enough to draw a CDF."""
    s = sorted(values)
    return [_at(s, 100 * k / n) for k in range(n + 1)] if s else []


@dataclass
class Result:
    scenario: str
    users: int = 0
    messages: int = 0
    throughput_msgs_per_s: float = 0.0
    latency_ms: dict[str, float] = field(
        default_factory=lambda: {"p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0}
    )
    lost: int = 0
    duplicates: int = 0
    connect_success_rate: float = 1.0
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    rss_mb: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        body = {
            "scenario": self.scenario,
            "users": self.users,
            "messages": self.messages,
            "throughput_msgs_per_s": round(self.throughput_msgs_per_s, 1),
            "latency_ms": self.latency_ms,
            "lost": self.lost,
            "duplicates": self.duplicates,
            "connect_success_rate": round(self.connect_success_rate, 5),
            "cpu_seconds": self.cpu_seconds,
            "rss_mb": self.rss_mb,
        }
        body.update(self.extra)
        return body


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.3f}".rstrip("0").rstrip(".") if abs(v) < 100 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, dict):
        return ", ".join(f"{k} {_fmt(x)}" for k, x in v.items())
    return str(v)


HIDDEN = {"cdf_ms", "runs", "summary", "e2e_cdf_ms"}


def table(results: Sequence[Result], title: str) -> Table:
    """One column per result, one row per field (the nested ones flattened)."""
    t = Table(title=title)
    t.add_column("")
    for r in results:
        t.add_column(r.extra.get("label", r.scenario), justify="right")
    rows: dict[str, list[str]] = {}
    for i, r in enumerate(results):
        for k, v in r.to_json().items():
            if k in HIDDEN or k in ("scenario", "label") or isinstance(v, list):
                continue
            rows.setdefault(k, [""] * len(results))[i] = _fmt(v)
    for k, cells in rows.items():
        t.add_row(k, *cells)
    return t


def show(
    results: Sequence[Result],
    *,
    title: str,
    json_out: bool,
    main: Result | None = None,
    notes: Sequence[str] = (),
) -> None:
    out.print(table(results, title))
    for n in notes:
        out.print(n)
    if json_out:
        body = (main or results[0]).to_json()
        print(orjson.dumps(body).decode(), flush=True)
