"""The tables of ``courier bench floor``: every cell is a range over the rounds."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from .floor import SCRIPTS, STEP_ORDER, STEP_SIDE
from .floor_lua import STEPS

WHAT = {
    "append": "append the stream entry",
    "record": "message record (status queued)",
    "lifetime": "its lifetime",
    "read": "consumer read (per entry)",
    "check": "status and expiry check",
    "presence": "user's connections (per user and call)",
    "sent": "status sent + event",
    "inflight_add": "in-flight record (variadic)",
    "xack": "XACK the entry (variadic)",
    "trim": "XTRIM MINID past the batch",
    "ack_check": "status and owner check",
    "delivered": "final status delivered + event",
    "inflight_del": "in-flight removal (variadic)",
    "retain": "retention (LT)",
}


def cell(r: Any, digits: int = 2) -> str:
    """``min - max`` (one number when they agree); blank when not measured (0)."""
    if not isinstance(r, dict) or "min" not in r or r["max"] == 0 == r["min"]:
        return ""

    def f(v: float) -> str:
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.{digits}f}"

    lo, hi = r["min"], r["max"]
    return f(lo) if f(lo) == f(hi) else f"{f(lo)} - {f(hi)}"


def floor_table(s: dict[str, Any]) -> Table:
    t = Table(title="The floor: one guaranteed delivery, command by command (inside Lua)")
    heads = ["side", "step", "command", "calls/msg", "µs/call alone", "µs/call in floor"]
    heads += ["µs/msg in floor", "rb -P1 rps", "rb -P1 Redis CPU µs", "rb -P16 Redis CPU µs"]
    for c in heads:
        t.add_column(c, justify="left" if c in ("side", "step", "command") else "right")
    for step in STEP_ORDER:
        f = s["floor_steps"][step]
        cmd = "XREADGROUP" if step == "read" else STEPS[step][0].upper()
        t.add_row(
            STEP_SIDE[step],
            WHAT[step],
            cmd,
            cell(f["calls_per_msg"], 3),
            cell(f["us_per_call"]),
            cell(f["in_scripts_us_per_call"]),
            cell(f["in_scripts_us_per_msg"]),
            cell(f["rb_P1_rps"], 0),
            cell(f["rb_P1_cpu_us_per_call"]),
            cell(f["rb_P16_cpu_us_per_call"]),
        )
    blank = [""] * 3
    t.add_row("", "[bold]commands[/]", *blank, "", cell(s["floor_commands_in_scripts_us_per_msg"]))
    return t


def floor_scripts_table(s: dict[str, Any]) -> Table:
    t = Table(title="The floor as scripts (accept, dispatch, ack) and the read, per message")
    for c in ("", "calls/msg", "script µs", "of it commands", "of it Lua", "Redis CPU µs"):
        t.add_column(c, justify="left" if not c else "right")
    for side, f in s["floor_scripts"].items():
        t.add_row(
            side,
            cell(f["script_calls_per_msg"], 4),
            cell(f["script_us_per_msg"] if side != "read" else f["top_level_us_per_msg"]),
            cell(f["commands_in_scripts_us_per_msg"]),
            cell(f["lua_us_per_msg"]),
            cell(f["redis_cpu_us_per_msg"]),
        )
    t.add_row(
        "[bold]total[/] (+ retry scan)",
        "",
        cell(s["floor_scripts_us_per_msg"]),
        "",
        "",
        cell(s["floor_redis_cpu_us_per_msg"]),
    )
    t.add_row("  PEL as in-flight record", "", cell(s["floor_scripts_pel_us_per_msg"]))
    t.add_row("  one script per step", "", cell(s["floor_steps_scripts_us_per_msg"]))
    return t


def scripts_table(s: dict[str, Any]) -> Table:
    t = Table(title="Today against the floor, script by script (µs of Redis time per message)")
    for c in ("script", "calls/msg", "µs/call", "today µs/msg", "of it commands", "of it Lua"):
        t.add_column(c, justify="left" if c == "script" else "right")
    t.add_column("Redis CPU µs/msg", justify="right")
    t.add_column("floor µs/msg", justify="right")
    for name, row in s["scripts"].items():
        ph = s["today"].get(name, {})
        t.add_row(
            name,
            cell(ph.get("script_calls_per_msg"), 4),
            cell(ph.get("script_us_per_call"), 1),
            cell(row["today_us_per_msg"]),
            cell(ph.get("commands_in_scripts_us_per_msg")),
            cell(ph.get("lua_us_per_msg")),
            cell(ph.get("redis_cpu_us_per_msg")),
            cell(row["floor_us_per_msg"]),
        )
    t.add_row(
        "[bold]total[/]",
        "",
        "",
        cell(s["today_scripts_us_per_msg"]),
        "",
        "",
        cell(s["today_redis_cpu_us_per_msg"]),
        cell(s["floor_scripts_us_per_msg"]),
    )
    return t


def totals_table(s: dict[str, Any]) -> Table:
    n = s["no_aof"]
    t = Table(title="Redis per delivered message: today and the floor, AOF on and off")
    for c in ("", "today", "floor", "today / floor"):
        t.add_column(c, justify="left" if not c else "right")

    def ratio(a: Any, b: Any) -> str:
        if not (a["min"] > 0 and b["min"] > 0):
            return ""
        lo, hi = a["min"] / b["max"], a["max"] / b["min"]
        return f"{lo:.2f}" if f"{lo:.2f}" == f"{hi:.2f}" else f"{lo:.2f} - {hi:.2f}"

    for name, a, b in (
        (
            "scripts + read µs (commandstats)",
            s["today_scripts_us_per_msg"],
            s["floor_scripts_us_per_msg"],
        ),
        ("Redis process CPU µs", s["today_redis_cpu_us_per_msg"], s["floor_redis_cpu_us_per_msg"]),
        (
            "scripts + read µs, AOF off",
            n["today_scripts_us_per_msg"],
            n["floor_scripts_us_per_msg"],
        ),
        (
            "Redis process CPU µs, AOF off",
            n["today_redis_cpu_us_per_msg"],
            n["floor_redis_cpu_us_per_msg"],
        ),
    ):
        t.add_row(name, cell(a), cell(b), ratio(a, b))
    return t


def steps_table(s: dict[str, Any], name: str) -> Table:
    ph = s["today"][name]
    seen = s.get("trace_calls_per_msg", {}).get(name, {})
    t = Table(title=f"{name}: its commands, per delivered message")
    for c in ("command", "calls/msg", "µs/call", "µs/msg", "calls/msg in the e2e trace"):
        t.add_column(c, justify="left" if c == "command" else "right")
    for cmd, row in ph["commands"].items():
        t.add_row(
            cmd.upper(),
            cell(row["calls_per_msg"], 3),
            cell(row["us_per_call"]),
            cell(row["us_per_msg"]),
            cell(seen.get(cmd), 3),
        )
    t.add_row("[bold]Lua[/] (script - commands)", "", "", cell(ph["lua_us_per_msg"]))
    t.add_row("[bold]script[/]", "", "", cell(ph["script_us_per_msg"]))
    return t


def e2e_table(s: dict[str, Any]) -> Table:
    e = s["e2e"]
    t = Table(title="Courier e2e, per delivered message (commandstats are wall time)")
    t.add_column("")
    t.add_column("", justify="right")
    rows = [
        ("throughput msg/s", e["throughput_msgs_per_s"]),
        ("Redis process CPU µs", e["redis_cpu_us_per_msg"]),
        ("scripts µs (commandstats)", e["scripts_us_per_msg"]),
        ("  commands in scripts µs", e["commands_in_scripts_us_per_msg"]),
        ("  Lua µs", e["lua_us_per_msg"]),
        ("top-level commands µs (XREADGROUP ...)", e["top_level_us_per_msg"]),
        ("server (edge + workers) CPU µs", e["server_cpu_us_per_msg"]),
        ("load average (1 min, max)", e["load_avg_1m_max"]),
        ("other processes' CPU s", e["other_cpu_s"]),
    ]
    for k, v in rows:
        t.add_row(k, cell(v))
    m = s["isolated_machine"]
    t.add_row("isolated measures: load average (1 min, max)", cell(m["load_avg_1m_max"]))
    t.add_row("isolated measures: other processes' CPU s", cell(m["other_cpu_s"]))
    return t


def show(summary: dict[str, Any], console: Console) -> None:
    console.print(floor_table(summary))
    console.print(floor_scripts_table(summary))
    console.print(scripts_table(summary))
    console.print(totals_table(summary))
    for name in SCRIPTS:
        console.print(steps_table(summary, name))
    console.print(e2e_table(summary))
