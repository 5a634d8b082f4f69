"""``courier bench floor``: what one guaranteed delivery costs Redis today, script by
script and command by command, against the floor of the commands it cannot avoid.

Each round runs, one after the other (so the rounds interleave):

1. Courier's e2e (``run_courier``: edge, workers, clients, producer) with Redis's
   ``INFO commandstats`` and CPU read from the first message to the last delivery,
   and a short SLOWLOG trace (:mod:`bench.floor_trace`) that gives the run's shape:
   messages per call of each script, commands per message;
2. on a fresh private Redis that nothing else uses: today's scripts through Courier's
   own code in batches of that shape (:mod:`bench.floor_replay`), the floor's commands
   one step at a time and as three scripts (:mod:`bench.floor_lua`), and each floor
   command from a client with ``redis-benchmark`` (:mod:`bench.floor_rb`).

Every figure is per delivered message, with min / median / max over the rounds.
"""

from __future__ import annotations

import asyncio
import statistics
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from . import floor_rb
from .common import Ticker
from .floor_lua import STEPS, Floor, Shape
from .floor_meter import Meter
from .floor_replay import Replay
from .floor_trace import E2ETracer
from .flows import Opts, run_courier
from .procs import Stack
from .report import Result

STEP_ORDER = ["append", "record", "lifetime", "read", "check", "presence", "sent"]
STEP_ORDER += ["inflight_add", "xack", "trim", "ack_check", "delivered", "inflight_del"]
STEP_ORDER += ["retain"]
STEP_SIDE = {s: "accept" for s in STEP_ORDER[:3]}
STEP_SIDE |= {s: "dispatch" for s in STEP_ORDER[3:10]}
STEP_SIDE |= {s: "ack" for s in STEP_ORDER[10:]}
RB_STEP = {
    "append": "append",
    "record": "message record",
    "lifetime": "its lifetime",
    "read": "consumer read (1 entry)",
    "check": "status check",
    "presence": "user's connections",
    "sent": "status write",
    "inflight_add": "in-flight record",
    "ack_check": "status check",
    "delivered": "status write",
    "inflight_del": "its removal",
    "retain": "its lifetime",
}
SCRIPTS = ("enqueue_many", "dispatch_many", "ack_many")
SWEEP = ("promote", "due", "expire")


@dataclass
class FloorOpts:
    users: int = 500
    messages: int = 50_000
    rounds: int = 3
    isolated: int = 24_000  # messages per round for the replay and for the floor
    cycle: int = 3_000  # accepted, then dispatched, then acked, at a time
    trace_seconds: float = 0.3
    benchmark_requests: int = floor_rb.REQUESTS
    quiet: bool = False


def shape_of(tracer: E2ETracer) -> Shape:
    s = tracer.shapes.get("scripts", {})

    def per_call(name: str, key: str, default: float) -> int:
        v = s.get(name, {}).get(key) or default
        return max(1, round(v))

    return Shape(
        accept=per_call("enqueue_many", "messages_per_call", 62),
        dispatch=per_call("dispatch_many", "messages_per_call", 100),
        ack=per_call("ack_many", "messages_per_call", 77),
        ack_users=per_call("ack_many", "users_per_call", 48),
    )


async def e2e_round(fo: FloorOpts, *, traced: bool) -> tuple[Result, E2ETracer]:
    """An e2e run measured from start to end, or (``traced``) one for its shape only."""
    seconds = fo.trace_seconds if traced else 0.0
    tracer = E2ETracer(fo.users, fo.messages, seconds=seconds)
    o = Opts(users=fo.users, messages=fo.messages, quiet=fo.quiet, during=tracer)
    return await run_courier(o, label="e2e-traced" if traced else "e2e"), tracer


async def isolated_round(fo: FloorOpts, shape: Shape, tick: Ticker) -> dict[str, Any]:
    stack = Stack("floor")
    try:
        stack.start_redis()
        assert stack.redis is not None
        stack.usage.mark()
        r = aioredis.Redis.from_url(stack.redis_url)
        redis_proc = next(p for p in stack.usage.procs if p.role == "redis")
        meter, warm = Meter(r, redis_proc), Meter(r, redis_proc)
        replay = Replay(r, warm, prefix="today", users=fo.users)
        floor = Floor(r, warm, prefix="floor", users=fo.users)
        await replay.setup()
        await floor.setup()
        await replay.cycle(min(fo.cycle, 1000), shape, measure=False)  # loads the scripts
        await floor.steps(min(fo.cycle, 1000), shape)
        await floor.combined(min(fo.cycle, 1000), shape)
        replay.meter = floor.meter = meter
        cycles = max(1, fo.isolated // fo.cycle)
        for c in range(cycles):  # today's and the floor's cycles interleave too
            await replay.cycle(fo.cycle, shape)
            await floor.steps(fo.cycle, shape)
            await floor.combined(fo.cycle, shape)
            tick(f"isolated: cycle {c + 1}/{cycles}")
        await floor.scan(passes=max(cycles, 10))
        # the same without the append-only file: what writing it costs Redis
        await r.config_set("appendonly", "no")
        meter.tag = "noaof:"
        no_aof = max(1, cycles // 2)
        for c in range(no_aof):
            await replay.cycle(fo.cycle, shape)
            await floor.combined(fo.cycle, shape)
            tick(f"isolated, AOF off: cycle {c + 1}/{no_aof}")
        meter.tag = ""
        await r.config_set("appendonly", "yes")
        await replay.check((cycles + no_aof) * fo.cycle + min(fo.cycle, 1000))
        tick("redis-benchmark")
        rb = await floor_rb.run(r, stack.redis.port, redis_proc, fo.benchmark_requests)
        await r.aclose()
        return {
            "shape": shape.__dict__,
            # each phase's least disturbed cycle (see Phase.best), its Redis CPU over all
            "phases": {k: _best(v) for k, v in meter.phases.items()},
            "cycles": cycles,
            "machine": stack.usage.context(),
            "redis_benchmark": rb,
        }
    finally:
        await stack.close()


def _best(ph: Any) -> dict[str, Any]:
    out: dict[str, Any] = ph.best().to_json(ph.best().passes or None)
    # psutil's CPU times tick every 10 ms: one cycle's share is too coarse, take all
    out["redis_cpu_us_per_msg"] = ph.to_json(ph.passes or None)["redis_cpu_us_per_msg"]
    out["all_cycles_script_us_per_msg"] = ph.to_json(ph.passes or None)["script_us_per_msg"]
    return out


def rng(values: list[float]) -> dict[str, float]:
    vals = [float(v) for v in values]
    return {
        "min": round(min(vals), 3),
        "median": round(statistics.median(vals), 3),
        "max": round(max(vals), 3),
    }


def _num(d: dict[str, Any], *path: str) -> float:
    for p in path:
        d = d.get(p, {}) if isinstance(d, dict) else {}
    return float(d) if isinstance(d, int | float) else 0.0


def round_tables(
    e2e: Result, measured: E2ETracer, traced: E2ETracer, iso: dict[str, Any]
) -> dict[str, Any]:
    """One round's figures, flat enough to take ranges of (see :func:`summarize`)."""
    ph = iso["phases"]
    rb = {row["step"]: row for row in iso["redis_benchmark"]}
    floor: dict[str, dict[str, float]] = {}
    for step in STEP_ORDER:
        p = ph[f"step:{step}"]
        cmd = "xreadgroup" if step == "read" else STEPS[step][0]
        row = (p["top_level"] if step == "read" else p["commands"]).get(cmd, {})
        b = rb.get(RB_STEP.get(step, ""), {})
        # the same command inside the floor's three scripts (after the other commands on
        # the same key: a command that touches a key first pays for fetching it)
        f = ph[f"floor:{STEP_SIDE[step] if step != 'read' else 'read'}"]
        inside = (f["top_level"] if step == "read" else f["commands"]).get(cmd, {})
        floor[step] = {
            "calls_per_msg": row.get("calls_per_msg", 0.0),
            "us_per_call": row.get("us_per_call", 0.0),
            "us_per_msg": row.get("us_per_msg", 0.0),
            "script_us_per_msg": p["script_us_per_msg"] + p["top_level_us_per_msg"],
            "in_scripts_us_per_call": inside.get("us_per_call", 0.0),
            "in_scripts_us_per_msg": inside.get("us_per_msg", 0.0),
            "rb_P1_rps": _num(b, "P1", "rps"),
            "rb_P1_cpu_us_per_call": _num(b, "P1", "redis_cpu_us_per_call"),
            "rb_P16_cpu_us_per_call": _num(b, "P16", "redis_cpu_us_per_call"),
            "rb_us_per_call": _num(b, "P16", "us_per_call"),
        }
    scan = ph["step:retry_scan"]  # per pass of one partition... per pass of all: x8
    trace = traced.shapes.get("scripts", {})
    delivered_in_window = max(trace.get("ack_many", {}).get("messages", 0), 1)
    passes_per_msg = trace.get("due", {}).get("calls", 0) / 8 / delivered_in_window
    sweep = ph["sweep"]
    floor_sides = {
        side: ph[f"floor:{side}"]["script_us_per_msg"] for side in ("accept", "dispatch", "ack")
    }
    floor_sides["read"] = ph["floor:read"]["top_level_us_per_msg"]
    floor_sides["retry scan"] = scan["script_us_per_msg"] * passes_per_msg
    pel = floor["inflight_add"]["in_scripts_us_per_msg"]
    pel += floor["inflight_del"]["in_scripts_us_per_msg"]
    floor_scripts = {
        side: {
            k: ph[f"floor:{side}"][k]
            for k in (
                "script_calls_per_msg",
                "script_us_per_msg",
                "commands_in_scripts_us_per_msg",
                "lua_us_per_msg",
                "top_level_us_per_msg",
                "redis_cpu_us_per_msg",
            )
        }
        for side in ("accept", "read", "dispatch", "ack")
    }
    today = {name: ph[name] for name in SCRIPTS}
    rows = {
        "enqueue_many": (today["enqueue_many"]["script_us_per_msg"], floor_sides["accept"]),
        "XREADGROUP": (today["dispatch_many"]["top_level_us_per_msg"], floor_sides["read"]),
        "dispatch_many": (today["dispatch_many"]["script_us_per_msg"], floor_sides["dispatch"]),
        "ack_many": (today["ack_many"]["script_us_per_msg"], floor_sides["ack"]),
        "scheduler (promote, due, expire)": (
            sweep["script_us_per_msg"] * passes_per_msg,
            floor_sides["retry scan"],
        ),
    }
    e2e_phase = measured.phase.to_json()
    return {
        "floor_steps": floor,
        "floor_commands_us_per_msg": sum(f["us_per_msg"] for f in floor.values()),
        "floor_commands_in_scripts_us_per_msg": sum(
            f["in_scripts_us_per_msg"] for f in floor.values()
        ),
        "floor_scripts": floor_scripts,
        "floor_steps_scripts_us_per_msg": sum(f["script_us_per_msg"] for f in floor.values()),
        "floor_scripts_us_per_msg": sum(floor_sides.values()),
        "floor_scripts_pel_us_per_msg": sum(floor_sides.values()) - pel,
        "floor_redis_cpu_us_per_msg": sum(
            ph[f"floor:{s}"]["redis_cpu_us_per_msg"] for s in ("accept", "read", "dispatch", "ack")
        ),
        "scripts": {
            k: {"today_us_per_msg": a, "floor_us_per_msg": b} for k, (a, b) in rows.items()
        },
        "today_scripts_us_per_msg": sum(a for a, _ in rows.values()),
        "no_aof": {
            "today_scripts_us_per_msg": sum(
                ph[f"noaof:{n}"]["script_us_per_msg"] + ph[f"noaof:{n}"]["top_level_us_per_msg"]
                for n in SCRIPTS
            ),
            "today_redis_cpu_us_per_msg": sum(
                ph[f"noaof:{n}"]["redis_cpu_us_per_msg"] for n in SCRIPTS
            ),
            "floor_scripts_us_per_msg": sum(
                ph[f"noaof:floor:{n}"]["script_us_per_msg"]
                + ph[f"noaof:floor:{n}"]["top_level_us_per_msg"]
                for n in ("accept", "read", "dispatch", "ack")
            ),
            "floor_redis_cpu_us_per_msg": sum(
                ph[f"noaof:floor:{n}"]["redis_cpu_us_per_msg"]
                for n in ("accept", "read", "dispatch", "ack")
            ),
        },
        "isolated_machine": {
            "load_avg_1m_max": iso["machine"]["load_avg_1m"]["max"],
            "other_cpu_s": iso["machine"]["other_cpu_s"],
            "seconds": iso["machine"]["measured_s"],
        },
        "today_redis_cpu_us_per_msg": sum(today[s]["redis_cpu_us_per_msg"] for s in SCRIPTS),
        "today": today,
        "sweep_us_per_pass": sweep["script_us_per_msg"],
        "sweep_passes_per_msg": passes_per_msg,
        "e2e": {
            "throughput_msgs_per_s": round(e2e.throughput_msgs_per_s, 1),
            "lost": e2e.lost,
            "redis_cpu_us_per_msg": e2e_phase["redis_cpu_us_per_msg"],
            "scripts_us_per_msg": e2e_phase["script_us_per_msg"],
            "commands_in_scripts_us_per_msg": e2e_phase["commands_in_scripts_us_per_msg"],
            "lua_us_per_msg": e2e_phase["lua_us_per_msg"],
            "top_level_us_per_msg": e2e_phase["top_level_us_per_msg"],
            "server_cpu_us_per_msg": e2e.extra.get("cpu_us_per_msg", {}).get("server", 0.0),
            "load_avg_1m_max": e2e.extra.get("machine", {}).get("load_avg_1m", {}).get("max", 0),
            "other_cpu_s": e2e.extra.get("machine", {}).get("other_cpu_s", 0.0),
            "commands": e2e_phase["commands"],
            "trace": traced.shapes,
        },
        "trace_calls_per_msg": {
            name: {
                cmd: round(c["calls"] / max(t["messages"], 1), 3)
                for cmd, c in t["commands"].items()
            }
            for name, t in trace.items()
        },
    }


async def run_floor(fo: FloorOpts) -> Result:
    tick = Ticker("floor", quiet=fo.quiet)
    rounds: list[dict[str, Any]] = []
    first: Result | None = None
    for k in range(fo.rounds):
        tick(f"round {k + 1}/{fo.rounds}: e2e", force=True)
        e2e, measured = await e2e_round(fo, traced=False)
        first = first or e2e
        tick(f"round {k + 1}/{fo.rounds}: e2e with a SLOWLOG trace (its shape)", force=True)
        _, traced = await e2e_round(fo, traced=True)
        shape = shape_of(traced)
        missing = [n for n in SCRIPTS if n not in traced.shapes.get("scripts", {})]
        if missing:
            tick(f"the trace saw no {', '.join(missing)}: default batch sizes", force=True)
        tick(f"round {k + 1}/{fo.rounds}: isolated, shape {shape}", force=True)
        iso = await isolated_round(fo, shape, tick)
        rounds.append({"tables": round_tables(e2e, measured, traced, iso), "isolated": iso})
        await asyncio.sleep(0)
    assert first is not None
    first.scenario = "floor"
    first.extra.pop("cdf_ms", None)
    first.extra["rounds"] = fo.rounds
    first.extra["runs"] = rounds
    first.extra["summary"] = summarize([r["tables"] for r in rounds])
    return first


def summarize(tables: list[dict[str, Any]]) -> dict[str, Any]:
    """The same structure as one round's tables, each number as its range."""

    def walk(items: list[Any]) -> Any:
        head = items[0]
        if isinstance(head, dict):
            keys = [k for k in head if all(isinstance(t, dict) and k in t for t in items)]
            return {k: walk([t[k] for t in items]) for k in keys if k != "trace"}
        if isinstance(head, int | float) and not isinstance(head, bool):
            return rng(items)
        return head

    return walk(tables)  # type: ignore[no-any-return]
