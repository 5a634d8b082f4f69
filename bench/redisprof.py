"""Where Redis spends its time per script: SLOWLOG keeps every call slower than
``THRESHOLD_US`` during a run (the batched script calls take milliseconds; the commands
run inside the scripts, which SLOWLOG also logs, take a few microseconds and stay out),
grouped by the script it ran; each total is divided by the messages delivered."""

from __future__ import annotations

import hashlib

import redis.asyncio as aioredis

from delivery.keys import EVENTS_MAX_LEN
from delivery.scripts import NAMES, source

KEEP = 100_000
THRESHOLD_US = 200


def _sha_names(events_max_len: tuple[int, ...] = (EVENTS_MAX_LEN, 0)) -> dict[str, str]:
    """Script SHA -> name, for the default events setting and for events off (the
    setting is part of the scripts' text)."""
    return {
        hashlib.sha1(source(n, m).encode()).hexdigest(): n for n in NAMES for m in events_max_len
    }


async def start(r: aioredis.Redis) -> None:
    await r.config_set("slowlog-max-len", KEEP)
    await r.config_set("slowlog-log-slower-than", THRESHOLD_US)
    await r.slowlog_reset()


async def finish(r: aioredis.Redis, delivered: int) -> dict[str, dict[str, float]]:
    """Per script: calls, microseconds per call and per delivered message (calls faster
    than ``THRESHOLD_US`` are not counted)."""
    entries = await r.slowlog_get(KEEP)
    await r.config_set("slowlog-log-slower-than", 10_000)
    names = _sha_names()
    usec: dict[str, float] = {}
    calls: dict[str, int] = {}
    for e in entries:
        cmd = e.get("command") or b""
        parts = cmd.split() if isinstance(cmd, bytes) else []
        if len(parts) < 2 or parts[0].upper() != b"EVALSHA":
            key = parts[0].decode().lower() if parts else "?"
        else:
            key = names.get(parts[1].decode(), "other script")
        usec[key] = usec.get(key, 0.0) + float(e["duration"])
        calls[key] = calls.get(key, 0) + 1
    return {
        k: {
            "calls": calls[k],
            "usec_per_call": round(usec[k] / calls[k], 1),
            "usec_per_delivered_msg": round(usec[k] / max(delivered, 1), 2),
        }
        for k in sorted(usec, key=usec.__getitem__, reverse=True)
    }
