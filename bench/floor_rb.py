"""The floor's commands one by one from a client, with ``redis-benchmark`` against the
same private redis-server: requests per second (the client's view), the redis-server
process's CPU per call (network, parsing, reply and AOF included) and the command's
own time per call from ``INFO commandstats``; unpipelined (``-P 1``) and pipelined
(``-P 16``), 20 clients.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from typing import Any

import orjson
import redis.asyncio as aioredis

from .common import payload
from .measure import commandstats
from .procs import Proc

REQUESTS = 50_000
KEYS = 100_000
USERS = 500

_T = str(int(time.time() * 1000))
_EV = '{"t":' + _T + ',"e":"queued","a":0}'
_PL = orjson.dumps(payload(1)).decode()

# (what it is for, its commandstats name, -r range, the command)
COMMANDS: list[tuple[str, str, int, list[str]]] = [
    ("round trip (PING)", "ping", KEYS, ["PING"]),
    ("append", "xadd", KEYS, ["XADD", "rb:{p0}:q", "*", "m", "__rand_int__", "u", "u1"]),
    (
        "message record",
        "hset",
        KEYS,
        [
            *("HSET", "rb:{p0}:m:__rand_int__", "id", "__rand_int__", "u", "u1", "p", "normal"),
            *("pl", _PL, "ca", _T, "ea", _T, "tl", "86400000", "ma", "5", "a", "0", "rr", "0"),
            *("s", "queued", "n", "1", "e1", _EV),
        ],
    ),
    ("its lifetime", "pexpireat", KEYS, ["PEXPIREAT", "rb:{p0}:m:__rand_int__", _T + "000"]),
    (
        "consumer read (1 entry)",
        "xreadgroup",
        KEYS,
        ["XREADGROUP", "GROUP", "g", "c", "COUNT", "1", "STREAMS", "rb:{p0}:q", ">"],
    ),
    ("status check", "hmget", KEYS, ["HMGET", "rb:{p0}:m:__rand_int__", "s", "ea", "a"]),
    (
        "user's connections",
        "zrange",
        USERS,
        ["ZRANGE", "rb:{p0}:u:__rand_int__:conns", "0", "-1", "WITHSCORES"],
    ),
    (
        "status write",
        "hset",
        KEYS,
        ["HSET", "rb:{p0}:m:__rand_int__", "s", "sent", "a", "1", "n", "2", "e2", _EV],
    ),
    ("in-flight record", "zadd", KEYS, ["ZADD", "rb:{p0}:inflight", _T, "__rand_int__"]),
    ("its removal", "zrem", KEYS, ["ZREM", "rb:{p0}:inflight", "__rand_int__"]),
]
_RPS = re.compile(r'"([\d.]+)"(?:,"[\d.]+"){6}\s*$')


async def _prefill(r: aioredis.Redis) -> None:
    await r.xgroup_create("rb:{p0}:q", "g", id="0", mkstream=True)
    pipe = r.pipeline(transaction=False)
    for u in range(USERS):
        pipe.zadd(f"rb:{{p0}}:u:{u:012d}:conns", {f"node|c{u}": int(_T)})
    await pipe.execute()


async def _one(port: int, pipeline: int, keys: int, cmd: list[str], requests: int) -> float:
    binary = shutil.which("redis-benchmark") or "redis-benchmark"
    proc = await asyncio.create_subprocess_exec(
        binary,
        "-p",
        str(port),
        "-n",
        str(requests),
        "-c",
        "20",
        "-P",
        str(pipeline),
        "-r",
        str(keys),
        "--csv",
        *cmd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 300)
    m = _RPS.search(out.decode(errors="replace").strip().splitlines()[-1] if out else "")
    if proc.returncode != 0 or not m:
        raise RuntimeError(f"redis-benchmark failed: {err.decode(errors='replace')[-500:]}")
    return float(m.group(1))


async def run(
    r: aioredis.Redis, port: int, redis_proc: Proc, requests: int = REQUESTS
) -> list[dict[str, Any]]:
    """Every command of :data:`COMMANDS`, -P 1 then -P 16, ``requests`` each; one row
    per command (none when redis-benchmark is not installed)."""
    if shutil.which("redis-benchmark") is None:
        return []
    await _prefill(r)
    rows = []
    for what, name, keys, cmd in COMMANDS:
        row: dict[str, Any] = {"step": what, "command": " ".join(cmd[:1] + cmd[1:2])}
        for p in (1, 16):
            before, cpu0 = await commandstats(r), redis_proc.cpu()
            rps = await _one(port, p, keys, cmd, requests)
            cpu1, after = redis_proc.cpu(), await commandstats(r)
            calls = after.get(name, (0, 0))[0] - before.get(name, (0, 0))[0]
            usec = after.get(name, (0, 0))[1] - before.get(name, (0, 0))[1]
            row[f"P{p}"] = {
                "rps": round(rps),
                "redis_cpu_us_per_call": round((cpu1 - cpu0) * 1e6 / requests, 2),
                "us_per_call": round(usec / max(calls, 1), 3),
            }
        rows.append(row)
    return rows
