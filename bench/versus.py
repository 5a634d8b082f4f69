"""``courier bench peer``: Courier's e2e beside python-socketio and/or Node Socket.IO,
in interleaved rounds (the order rotates from round to round, so that no side always
runs first or last on a shared machine), with CPU per message per process role and
ranges over the rounds."""

from __future__ import annotations

import statistics
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from .flows import Opts, run_courier, run_peer
from .nodepeer import run_node
from .report import Result

RUNNERS: dict[str, Callable[[Opts], Awaitable[Result]]] = {
    "e2e": run_courier,
    "socketio": run_peer,
    "node": run_node,
}
LABELS = {"e2e": "Courier e2e", "socketio": "python-socketio", "node": "Node Socket.IO"}
PEERS = ("socketio", "node")


def producer_role(r: Result) -> str:
    """Where a side's producer runs: its own process (Node), else the bench process."""
    return "producer" if "producer" in r.cpu_seconds else "bench"


def _metrics(r: Result) -> dict[str, float]:
    per = r.extra.get("cpu_us_per_msg", {})
    lat = r.latency_ms
    machine = r.extra.get("machine", {})
    return {
        "throughput_msgs_per_s": round(r.throughput_msgs_per_s, 1),
        "server_us_per_msg": per.get("server", 0.0),
        "redis_us_per_msg": per.get("redis", 0.0),
        "producer_us_per_msg": per.get(producer_role(r), 0.0),
        "clients_us_per_msg": per.get("loadgen", 0.0),
        "total_us_per_msg": round(sum(per.values()), 1),
        "p50_ms": lat["p50"],
        "p99_ms": lat["p99"],
        "lost": r.lost,
        "duplicates": r.duplicates,
        "load_avg_1m_max": machine.get("load_avg_1m", {}).get("max", 0.0),
        "other_cpu_s": machine.get("other_cpu_s", 0.0),
    }


def _spread(values: Sequence[float]) -> dict[str, Any]:
    return {
        "min": min(values),
        "median": round(statistics.median(values), 3),
        "max": max(values),
        "values": list(values),
    }


def summary(rounds: list[dict[str, Result]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per side and metric: min, median, max and the value of every round; the ratio of
    e2e's throughput to each peer's is taken within each round."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for kind in rounds[0]:
        rows = [_metrics(rd[kind]) for rd in rounds]
        out[kind] = {m: _spread([row[m] for row in rows]) for m in rows[0]}
        if kind != "e2e" and "e2e" in rounds[0]:
            out[kind]["ratio_e2e_to_this"] = _spread(
                [
                    round(rd["e2e"].throughput_msgs_per_s / rd[kind].throughput_msgs_per_s, 3)
                    if rd[kind].throughput_msgs_per_s
                    else 0.0
                    for rd in rounds
                ]
            )
    return out


async def run_rounds(
    o: Opts, kinds: Sequence[str], n: int, *, on_result: Callable[[Result], None] | None = None
) -> list[dict[str, Result]]:
    """``n`` rounds of every side in ``kinds``; round r starts at side r (mod sides)."""
    rounds = []
    for r in range(n):
        k = r % len(kinds)
        order = [*kinds[k:], *kinds[:k]]
        got: dict[str, Result] = {}
        for pos, kind in enumerate(order):
            res = await RUNNERS[kind](o)
            if kind != "e2e":
                res.scenario = "peer"
            res.extra.update(label=LABELS[kind], side=kind, round=r + 1, position=pos + 1)
            got[kind] = res
            if on_result:
                on_result(res)
        rounds.append({kind: got[kind] for kind in kinds})
    return rounds


def attach_e2e(peer: Result, mine: Result) -> None:
    """The e2e keys of a peer's JSON (its run beside Courier's, same round)."""
    ratio = (
        round(mine.throughput_msgs_per_s / peer.throughput_msgs_per_s, 3)
        if peer.throughput_msgs_per_s
        else 0.0
    )
    peer.extra["e2e_throughput_msgs_per_s"] = round(mine.throughput_msgs_per_s, 1)
    peer.extra["e2e_lost"] = mine.lost
    peer.extra["e2e_latency_ms"] = mine.latency_ms
    peer.extra["ratio_e2e_to_peer"] = ratio
    peer.extra["e2e_cdf_ms"] = mine.extra.get("cdf_ms", [])


ROWS = {
    "throughput_msgs_per_s": "msg/s",
    "ratio_e2e_to_this": "e2e / this (same round)",
    "server_us_per_msg": "server CPU µs/msg",
    "redis_us_per_msg": "Redis CPU µs/msg",
    "producer_us_per_msg": "producer CPU µs/msg",
    "clients_us_per_msg": "clients CPU µs/msg",
    "total_us_per_msg": "all processes µs/msg",
    "p50_ms": "p50 ms",
    "p99_ms": "p99 ms",
    "lost": "lost",
    "duplicates": "duplicates",
    "load_avg_1m_max": "load average (1 min, max)",
    "other_cpu_s": "other processes' CPU s",
}


def _cell(s: dict[str, Any] | None) -> str:
    if not s:
        return ""

    def f(v: float) -> str:
        return f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.3g}"

    return f(s["min"]) if s["min"] == s["max"] else f"{f(s['min'])} - {f(s['max'])}"


def spread_table(summ: dict[str, dict[str, dict[str, Any]]], title: str) -> Any:
    from rich.table import Table

    t = Table(title=title)
    t.add_column("")
    for kind in summ:
        t.add_column(LABELS[kind], justify="right")
    for metric, name in ROWS.items():
        t.add_row(name, *(_cell(summ[k].get(metric)) for k in summ))
    return t
