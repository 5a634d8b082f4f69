"""What Redis spent on one phase of work: ``INFO commandstats`` deltas (every command,
those run by scripts included: Redis 7 counts them) and the redis-server process's CPU.

A phase is measured while nothing else talks to this Redis, so a command's time in
commandstats is its CPU time (on a busy machine a command may also wait for a core;
the process CPU beside it tells). Lua overhead = the scripts' time minus the time of
the commands they ran (the interpreter, argument and reply conversion, string work).
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from .measure import commandstats
from .procs import Proc

SCRIPT_CALLS = ("evalsha", "eval", "evalsha_ro", "eval_ro", "fcall", "fcall_ro")
# Commands only a client sends (never a script here), or the measuring itself.
TOP_LEVEL = ("xreadgroup", "xautoclaim", "ping", "hello", "select", "client", "script")
IGNORED = ("info", "config", "slowlog", "command", "client|setinfo", "client|setname")


def _base(cmd: str) -> str:
    return cmd.split("|", 1)[0]


@dataclass
class Phase:
    """One kind of work, summed over every time it was measured (``samples`` keeps each
    time on its own: :meth:`best` is the least disturbed one)."""

    messages: int = 0
    cpu_s: float = 0.0
    passes: int = 0
    cmds: dict[str, list[int]] = field(default_factory=dict)  # command -> [calls, usec]
    samples: list[Phase] = field(default_factory=list)

    def add(self, before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> None:
        for cmd, (calls, usec) in after.items():
            c0, u0 = before.get(cmd, (0, 0))
            if calls > c0 and cmd not in IGNORED and _base(cmd) not in IGNORED:
                acc = self.cmds.setdefault(cmd, [0, 0])
                acc[0] += calls - c0
                acc[1] += usec - u0

    def merge(self, one: Phase) -> None:
        """Add one measured occurrence (and keep it as a sample)."""
        self.samples.append(one)
        self.messages += one.messages
        self.passes += one.passes
        self.cpu_s += one.cpu_s
        for cmd, (calls, usec) in one.cmds.items():
            acc = self.cmds.setdefault(cmd, [0, 0])
            acc[0] += calls
            acc[1] += usec

    def best(self) -> Phase:
        """The occurrence with the least Redis time per unit: commandstats count wall
        time, and on a shared machine a command that loses its core to another process
        takes longer; the least disturbed occurrence is the closest to the cost itself."""
        if not self.samples:
            return self

        def per_unit(p: Phase) -> float:
            return sum(u for _, u in p.cmds.values()) / max(p.passes or p.messages, 1)

        return min(self.samples, key=per_unit)

    def to_json(self, per: int | None = None) -> dict[str, Any]:
        """Per message (or per ``per`` units: passes of a periodic job)."""
        n = max(per if per is not None else self.messages, 1)
        script_calls = sum(self.cmds.get(c, [0, 0])[0] for c in SCRIPT_CALLS)
        script_us = sum(self.cmds.get(c, [0, 0])[1] for c in SCRIPT_CALLS)
        inner: dict[str, dict[str, float]] = {}
        top: dict[str, dict[str, float]] = {}
        for cmd, (calls, usec) in sorted(self.cmds.items(), key=lambda kv: -kv[1][1]):
            if cmd in SCRIPT_CALLS:
                continue
            row = {
                "calls_per_msg": round(calls / n, 3),
                "us_per_call": round(usec / calls, 3),
                "us_per_msg": round(usec / n, 3),
            }
            (top if _base(cmd) in TOP_LEVEL else inner)[cmd] = row
        inner_us = sum(v[1] for k, v in self.cmds.items() if k not in SCRIPT_CALLS) - sum(
            self.cmds[k][1] for k in self.cmds if _base(k) in TOP_LEVEL
        )
        return {
            "messages": self.messages,
            "passes": self.passes,
            "redis_cpu_us_per_msg": round(self.cpu_s * 1e6 / n, 2),
            "script_calls_per_msg": round(script_calls / n, 4),
            "script_us_per_call": round(script_us / max(script_calls, 1), 2),
            "script_us_per_msg": round(script_us / n, 3),
            "commands_in_scripts_us_per_msg": round(inner_us / n, 3),
            "lua_us_per_msg": round((script_us - inner_us) / n, 3),
            "top_level_us_per_msg": round(sum(r["us_per_msg"] for r in top.values()), 3),
            "commands": inner,
            "top_level": top,
        }


class Meter:
    """``async with meter.phase("dispatch", messages=n): ...`` adds that block's Redis
    work to the phase ``dispatch``."""

    def __init__(self, r: aioredis.Redis, redis_proc: Proc | None) -> None:
        self.r = r
        self.proc = redis_proc
        self.phases: dict[str, Phase] = {}
        self.tag = ""  # prefixed to the phases' names (a variant: "noaof:")

    @asynccontextmanager
    async def phase(self, name: str, *, messages: int = 0, passes: int = 0) -> Any:
        one = Phase(messages=messages, passes=passes)
        before = await commandstats(self.r)
        cpu0 = self.proc.cpu() if self.proc else 0.0
        yield one
        cpu1 = self.proc.cpu() if self.proc else 0.0
        one.add(before, await commandstats(self.r))
        one.cpu_s = cpu1 - cpu0
        self.phases.setdefault(self.tag + name, Phase()).merge(one)
