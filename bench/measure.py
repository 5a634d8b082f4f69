"""Reading the system under test: the users' status counters, Redis command and script
costs, and the optional profilers of ``e2e --profile``."""

from __future__ import annotations

import asyncio
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from delivery.keys import Keyspace

from . import layers, redisprof
from .procs import Stack

STATUSES = ("delivered", "sent", "queued", "parked", "scheduled", "dead", "expired")
SCAN_CHUNK = 1000


class Polls:
    """HGETs the bench itself sent to watch progress (``bench floor`` takes them out
    of the commands it charges to Courier)."""

    hget = 0


async def totals(r: aioredis.Redis, keyspace: Keyspace, status: str) -> int:
    """How many messages reached ``status`` in the whole deployment (the partitions'
    ``reached`` hashes): a few commands, cheap enough to poll during a run (callers
    subtract the figure they read before it)."""
    pipe = r.pipeline(transaction=False)
    Polls.hget += keyspace.partitions
    for p in range(keyspace.partitions):
        pipe.hget(keyspace.key(p, "reached"), status)
    return sum(int(v) for v in await pipe.execute() if v is not None)


async def delivered_count(r: aioredis.Redis, keyspace: Keyspace) -> int:
    return await totals(r, keyspace, "delivered")


async def status_counts(r: aioredis.Redis, keyspace: Keyspace, users: set[str]) -> dict[str, int]:
    """The status of every message of ``users`` still in Redis, counted by status (a
    scan of the message hashes: read once, after the measured phase)."""
    counts = dict.fromkeys(STATUSES, 0)
    keys: list[bytes] = []

    async def count() -> None:
        pipe = r.pipeline(transaction=False)
        for k in keys:
            pipe.hmget(k, ["s", "u"])
        for status, user in await pipe.execute():
            if status is not None and user is not None and user.decode() in users:
                name = status.decode()
                counts[name] = counts.get(name, 0) + 1
        keys.clear()

    async for k in r.scan_iter(match=f"{keyspace.prefix}:*:m:*", count=SCAN_CHUNK):
        keys.append(k)
        if len(keys) >= SCAN_CHUNK:
            await count()
    await count()
    return {k: v for k, v in counts.items() if v}


async def commandstats(r: aioredis.Redis) -> dict[str, tuple[int, int]]:
    """Redis ``INFO commandstats``: command -> (calls, usec)."""
    info = await r.info("commandstats")
    return {
        k.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"]))
        for k, v in info.items()
        if k.startswith("cmdstat_")
    }


def command_delta(
    before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]], per: int, top: int = 8
) -> dict[str, dict[str, float]]:
    """Calls and microseconds per ``per`` messages of the busiest Redis commands."""
    rows = []
    for cmd, (calls, usec) in after.items():
        c0, u0 = before.get(cmd, (0, 0))
        if calls - c0 > 0:
            rows.append((usec - u0, calls - c0, cmd))
    rows.sort(reverse=True)
    return {
        cmd: {
            "calls_per_msg": round(calls / max(per, 1), 3),
            "usec_per_call": round(usec / calls, 2),
            "usec_per_msg": round(usec / max(per, 1), 2),
        }
        for usec, calls, cmd in rows[:top]
    }


async def start_profile(stack: Stack, r: aioredis.Redis) -> Any:
    """py-spy on the (first) server process, SLOWLOG on Redis."""
    await redisprof.start(r)
    server = next((p for p in stack.usage.procs if p.role == "server"), None)
    spy_bin = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which(
        "py-spy"
    )
    if server is None or spy_bin is None:
        return None  # pip install py-spy for the server's share
    out = stack.dir / "server.pyspy"
    return await asyncio.create_subprocess_exec(
        spy_bin,
        "record",
        "-p",
        str(server.pid),
        "-o",
        str(out),
        "--format",
        "raw",
        "-r",
        "200",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    ), out


async def stop_spy(spy: Any) -> None:
    """Stop py-spy at the end of the measured phase (the clients' disconnects and the
    server's clean-up after it are no part of the cost per message)."""
    if spy is not None:
        proc, _ = spy
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
            await asyncio.wait_for(proc.wait(), 30)


async def finish_profile(
    stack: Stack, r: aioredis.Redis, spy: Any, got: dict[str, Any], delivered: int
) -> dict[str, Any]:
    out: dict[str, Any] = {"redis_usec_per_script": await redisprof.finish(r, delivered)}
    if spy is not None:
        await stop_spy(spy)
        _, path = spy
        if path.exists():
            out["server_usec_per_msg_by_layer"] = layers.per_message(
                path, got["cpu_seconds"].get("server", 0.0), delivered
            )
    return out
