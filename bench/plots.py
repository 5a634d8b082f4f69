"""Plots for docs/benchmarks.md (matplotlib, Agg): the latency CDF of ``e2e`` against
``peer`` and throughput against users, drawn from saved ``--json`` results.

``courier bench plots RESULTS_DIR OUT_DIR`` reads ``peer.json`` (a ``courier bench
peer --json`` line, which carries both CDFs) and ``users-*.json`` (``courier bench
peer --json --users N`` lines) and writes ``latency_cdf.png`` and
``throughput_users.png``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson


def load(path: Path) -> dict[str, Any]:
    result: dict[str, Any] = orjson.loads(path.read_text().strip().splitlines()[-1])
    return result


def latency_cdf(peer: dict[str, Any], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for label, cdf in (
        ("Courier e2e", peer.get("e2e_cdf_ms") or []),
        ("python-socketio (peer)", peer.get("cdf_ms") or []),
    ):
        if cdf:
            ys = [100 * k / (len(cdf) - 1) for k in range(len(cdf))]
            ax.plot(cdf, ys, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("enqueue to client receive (ms, log scale)")
    ax.set_ylabel("messages (%)")
    rate = peer.get("rate")
    ax.set_title(
        f"{peer['users']} users, {peer['messages']:,} messages"
        + (f" at {rate:g}/s" if rate else ", as fast as possible")
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    path = out / "latency_cdf.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def throughput_users(runs: list[dict[str, Any]], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = sorted(runs, key=lambda r: r["users"])
    xs = [r["users"] for r in runs]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(
        xs,
        [r.get("e2e_throughput_msgs_per_s", 0) for r in runs],
        "o-",
        label="Courier e2e (acked and marked delivered)",
    )
    ax.plot(
        xs, [r["throughput_msgs_per_s"] for r in runs], "s-", label="python-socketio (received)"
    )
    ax.set_xscale("log")
    ax.set_xlabel("connected users")
    ax.set_ylabel("messages per second")
    ax.set_ylim(bottom=0)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    path = out / "throughput_users.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
