"""A short SLOWLOG trace of a running Courier: which commands each script runs, and on
how many messages per call.

For ``seconds`` Redis logs every command (``slowlog-log-slower-than 0``). Redis 7 logs
the commands a script runs too, each as its own entry (client ``?:0``) just before the
script's entry; Redis runs one command at a time and CONFIG SET is a command, so the
window starts and ends between commands and every script in it is complete. An entry's
duration is the command's own (SLOWLOG adds its bookkeeping after it is taken), but a
script's duration includes that bookkeeping for each of its commands, so the scripts'
own durations here are not used: what the trace gives is the shape of the real run
(messages per call of each script, commands per message) and its commands' times.

Messages of a call = the distinct message hashes (``m:<id>``) its commands touched.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

import psutil
import redis.asyncio as aioredis

from delivery.keys import PARTITION_LAYOUT
from delivery.scripts import NAMES, source

from .floor_meter import Phase
from .measure import Polls, commandstats, totals

KEEP = 1_000_000
MSG_KEY = ":" + PARTITION_LAYOUT["msg"][0].split("{")[0]  # ":m:"
INNER = b"?:0"  # SLOWLOG's client address of a command run by a script


def _sha_names() -> dict[str, str]:
    return {hashlib.sha1(source(n).encode()).hexdigest(): n for n in NAMES}


@dataclass
class ScriptShape:
    """What one script did in the trace window."""

    calls: int = 0
    messages: int = 0
    users: int = 0  # distinct users' stats keys per call, summed
    commands: dict[str, list[int]] = field(default_factory=dict)  # name -> [calls, usec]

    def to_json(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "messages": self.messages,
            "messages_per_call": round(self.messages / max(self.calls, 1), 2),
            "users_per_call": round(self.users / max(self.calls, 1), 2),
            "commands": {
                k: {"calls": c, "usec": u}
                for k, (c, u) in sorted(self.commands.items(), key=lambda kv: -kv[1][1])
            },
        }


async def _raw_slowlog(r: aioredis.Redis) -> list[Any]:
    """SLOWLOG GET of every entry, unparsed (redis-py joins the arguments with spaces,
    which loses where a payload's argument ends)."""
    conn = await r.connection_pool.get_connection("SLOWLOG")
    try:
        await conn.send_command("SLOWLOG", "GET", KEEP)
        return list(await conn.read_response())
    finally:
        await r.connection_pool.release(conn)


async def trace(r: aioredis.Redis, seconds: float) -> list[Any]:
    """Every command Redis ran during ``seconds``, oldest first (raw SLOWLOG entries:
    id, time, usec, args, client address, client name)."""
    old_len = str((await r.config_get("slowlog-max-len"))["slowlog-max-len"])
    old_min = str((await r.config_get("slowlog-log-slower-than"))["slowlog-log-slower-than"])
    await r.config_set("slowlog-max-len", KEEP)
    await r.slowlog_reset()
    await r.config_set("slowlog-log-slower-than", 0)
    try:
        await asyncio.sleep(seconds)
    finally:
        await r.config_set("slowlog-log-slower-than", -1)
    entries = await _raw_slowlog(r)
    await r.slowlog_reset()
    await r.config_set("slowlog-max-len", old_len)
    await r.config_set("slowlog-log-slower-than", old_min)
    if len(entries) >= KEEP:
        raise RuntimeError("the SLOWLOG trace overflowed; trace a shorter window")
    return sorted(entries, key=lambda e: int(e[0]))


def _text(v: Any) -> str:
    return v.decode(errors="replace") if isinstance(v, bytes) else str(v)


def shapes(entries: list[Any]) -> dict[str, Any]:
    """Per script (by name): calls, messages, users and its commands; and the top-level
    commands that are not scripts (``top``)."""
    names = _sha_names()
    scripts: dict[str, ScriptShape] = {}
    top: dict[str, list[int]] = {}
    pending: list[tuple[str, int, list[Any]]] = []
    for e in entries:
        usec, args, addr = int(e[2]), e[3], e[4] if len(e) > 4 else b""
        name = _text(args[0]).lower() if args else "?"
        if addr == INNER:
            pending.append((name, usec, args))
            continue
        if name in ("evalsha", "evalsha_ro") and len(args) > 1:
            shape = scripts.setdefault(names.get(_text(args[1]), "other script"), ScriptShape())
            shape.calls += 1
            msgs, users = set(), set()
            for cmd, u, a in pending:
                c = shape.commands.setdefault(cmd, [0, 0])
                c[0] += 1
                c[1] += u
                key = _text(a[1]) if len(a) > 1 else ""
                if MSG_KEY in key:
                    msgs.add(key)
                elif key.endswith(":stats"):
                    users.add(key)
            shape.messages += len(msgs)
            shape.users += len(users)
        elif name not in ("config", "slowlog"):
            c = top.setdefault(name, [0, 0])
            c[0] += 1
            c[1] += usec
        pending = []
    return {
        "scripts": {k: v.to_json() for k, v in sorted(scripts.items())},
        "top": {k: {"calls": c, "usec": u} for k, (c, u) in top.items()},
        "entries": len(entries),
    }


class E2ETracer:
    """``Opts.during`` of an e2e run. Without ``seconds``: Redis's commands and CPU from
    the first message to the last delivery (``phase``). With ``seconds``: only a trace
    window of that length once ``at`` of the messages are delivered (``shapes``); the
    trace slows Redis down while it runs, so a traced run's figures are not used."""

    def __init__(self, users: int, messages: int, *, seconds: float = 0.0, at: float = 0.3) -> None:
        self.users = users
        self.messages = messages
        self.at = at
        self.seconds = seconds
        self.phase = Phase()
        self.shapes: dict[str, Any] = {}

    def _expected(self, k: int) -> int:
        return self.messages // self.users + (1 if k < self.messages % self.users else 0)

    async def __call__(self, target: Any) -> None:
        r = aioredis.Redis.from_url(target.redis_url)
        try:
            await self._run(r, target)
        finally:
            await r.aclose()

    async def _run(self, r: aioredis.Redis, target: Any) -> None:
        pid = int((await r.info("server"))["process_id"])
        proc = psutil.Process(pid)
        # the partitions' `reached` counters tell how far the run is (totals() counts
        # its HGETs in Polls)
        before = await totals(r, target.keyspace, "delivered")

        async def fraction() -> float:
            got = await totals(r, target.keyspace, "delivered") - before
            return got / max(self.messages, 1)

        deadline = time.monotonic() + 170

        async def until(share: float) -> None:
            while time.monotonic() < deadline:
                if await fraction() >= share:
                    return
                await asyncio.sleep(0.1)

        if self.seconds:
            await until(self.at)
            self.shapes = shapes(await trace(r, self.seconds))
            return
        t = proc.cpu_times()
        s0, c0, p0 = await commandstats(r), t.user + t.system, Polls.hget
        await until(1.0)
        t = proc.cpu_times()
        s1, c1 = await commandstats(r), t.user + t.system
        self.phase.add(s0, s1)
        self.phase.cpu_s = c1 - c0
        self.phase.messages = self.messages
        polls = Polls.hget - p0
        hget = self.phase.cmds.get("hget")
        if hget and hget[0] > polls:  # the bench's own progress polls are not Courier's
            hget[1] -= round(hget[1] * polls / hget[0])
            hget[0] -= polls
