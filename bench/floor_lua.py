"""The floor: the Redis commands one guaranteed delivery cannot avoid, each measured on
its own inside a Lua script (as Courier runs its commands), then all of them as three
scripts (accept, dispatch, ack) with nothing else in them.

Per message:

- accept: ``XADD`` the stream entry; ``HSET`` the message record (the fields Courier's
  record has: user, payload, status ``queued``, created, expires, attempts, first
  timeline event); ``PEXPIREAT`` its lifetime;
- dispatch: the consumer read (``XREADGROUP``, one per batch); ``HMGET`` the status
  and expiry (a cancelled or expired message must not go out); ``ZRANGE`` of the user's
  connections (once per user and batch); ``HSET`` status ``sent`` with its event;
  ``ZADD`` the in-flight record (its ack deadline, variadic); ``XACK`` the entries
  (variadic) and ``XTRIM MINID`` the stream past them, once per batch (an ``XDEL`` of
  each entry would cost far more);
- ack: ``HMGET`` status and owner; ``HSET`` the final status ``delivered`` with its
  event; ``ZREM`` the in-flight record (variadic); ``PEXPIREAT ... LT`` the retention;
- the retry scan: ``ZRANGEBYSCORE`` of the in-flight records past their deadline, once
  per partition and scheduler pass (not per message).

With the consumer group's pending entries list as the in-flight record (XREADGROUP
writes it, XACK removes it) the ``ZADD`` and ``ZREM`` go away (variant "PEL").
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis

from delivery.keys import partition_of

from .common import payload, user_ids, user_of
from .floor_meter import Meter

GROUP = "floor"
DAY_MS = 86_400_000

# One script per step: KEYS[1] the partition prefix P; ARGV[1] a time (ms), then items.
STEPS: dict[str, tuple[str, str]] = {
    # name: (command, body run for the items); `it(n)` yields items of n arguments
    "append": (
        "xadd",
        "for id, u in it(2) do redis.call('XADD', P..'q', '*', 'm', id, 'u', u) end",
    ),
    "record": (
        "hset",
        'local ev = string.format(\'{"t":%d,"e":"queued","a":0}\', T)\n'
        "for id, u, pl in it(3) do redis.call('HSET', P..'m:'..id, 'id', id, 'u', u, "
        "'p', 'normal', 'pl', pl, 'ca', T, 'ea', T + 86400000, 'tl', 86400000, 'ma', 5, "
        "'a', 0, 'rr', 0, 's', 'queued', 'n', 1, 'e1', ev) end",
    ),
    "lifetime": (
        "pexpireat",
        "for id in it(1) do redis.call('PEXPIREAT', P..'m:'..id, T + 2 * 86400000) end",
    ),
    "check": ("hmget", "for id in it(1) do redis.call('HMGET', P..'m:'..id, 's', 'ea', 'a') end"),
    "presence": (
        "zrange",
        "for u in it(1) do redis.call('ZRANGE', P..'u:'..u..':conns', 0, -1, 'WITHSCORES') end",
    ),
    "sent": (
        "hset",
        'local ev = string.format(\'{"t":%d,"e":"sent","a":1}\', T)\n'
        "for id in it(1) do redis.call('HSET', P..'m:'..id, 's', 'sent', 'a', 1, 'n', 2, "
        "'e2', ev) end",
    ),
    "inflight_add": (
        "zadd",
        "local z = {}\nfor id in it(1) do z[#z+1] = T + 30000; z[#z+1] = id end\n"
        "redis.call('ZADD', P..'inflight', unpack(z))",
    ),
    "xack": ("xack", "redis.call('XACK', P..'q', 'floor', unpack(ARGV, 2))"),
    "trim": (
        "xtrim",
        "local ms, seq = string.match(ARGV[2], '^(%d+)%-(%d+)$')\n"
        "redis.call('XTRIM', P..'q', 'MINID', ms .. '-' .. (tonumber(seq) + 1))",
    ),
    "ack_check": (
        "hmget",
        "for id in it(1) do redis.call('HMGET', P..'m:'..id, 's', 'u', 'a') end",
    ),
    "delivered": (
        "hset",
        'local ev = string.format(\'{"t":%d,"e":"acked","a":1}\', T)\n'
        "for id in it(1) do redis.call('HSET', P..'m:'..id, 's', 'delivered', 'n', 3, "
        "'e3', ev, 'da', T) end",
    ),
    "inflight_del": ("zrem", "redis.call('ZREM', P..'inflight', unpack(ARGV, 2))"),
    "retain": (
        "pexpireat",
        "for id in it(1) do redis.call('PEXPIREAT', P..'m:'..id, T + 86400000, 'LT') end",
    ),
    "retry_scan": (
        "zrangebyscore",
        "redis.call('ZRANGEBYSCORE', P..'inflight', '-inf', T, 'LIMIT', 0, 500)",
    ),
}
PRELUDE = """local P = KEYS[1]
local T = tonumber(ARGV[1])
local function it(n)
  local i = 2 - n
  return function()
    i = i + n
    if i > #ARGV then return nil end
    return unpack(ARGV, i, i + n - 1)
  end
end
"""

# The floor as the three scripts a redesign would have: every step of a phase, one
# TIME per call, the events formatted once per call, the variadic writes at the end.
COMBINED = {
    "accept": """local T = redis.call('TIME'); T = T[1] * 1000 + math.floor(T[2] / 1000)
local ev = string.format('{"t":%d,"e":"queued","a":0}', T)
for i = 1, #ARGV, 3 do
  local id, u = ARGV[i], ARGV[i + 1]
  local k = P..'m:'..id
  redis.call('HSET', k, 'id', id, 'u', u, 'p', 'normal', 'pl', ARGV[i + 2], 'ca', T,
    'ea', T + 86400000, 'tl', 86400000, 'ma', 5, 'a', 0, 'rr', 0, 's', 'queued', 'n', 1,
    'e1', ev)
  redis.call('PEXPIREAT', k, T + 2 * 86400000)
  redis.call('XADD', P..'q', '*', 'm', id, 'u', u)
end""",
    "dispatch": """local T = redis.call('TIME'); T = T[1] * 1000 + math.floor(T[2] / 1000)
local ev = string.format('{"t":%d,"e":"sent","a":1}', T)
local z, e, seen, out = {}, {}, {}, {}
for i = 1, #ARGV, 3 do
  local k, u = P..'m:'..ARGV[i + 1], ARGV[i + 2]
  e[#e + 1] = ARGV[i]
  local m = redis.call('HMGET', k, 's', 'ea', 'a')
  if m[1] == 'queued' and tonumber(m[2]) > T then
    if not seen[u] then
      seen[u] = redis.call('ZRANGE', P..'u:'..u..':conns', 0, -1, 'WITHSCORES')
    end
    redis.call('HSET', k, 's', 'sent', 'a', 1, 'n', 2, 'e2', ev)
    z[#z + 1] = T + 30000; z[#z + 1] = ARGV[i + 1]
    out[#out + 1] = 1
  end
end
if #z > 0 then redis.call('ZADD', P..'inflight', unpack(z)) end
redis.call('XACK', P..'q', 'floor', unpack(e))
local ms, seq = string.match(e[#e], '^(%d+)%-(%d+)$')
redis.call('XTRIM', P..'q', 'MINID', ms .. '-' .. (tonumber(seq) + 1))
return #out""",
    "ack": """local T = redis.call('TIME'); T = T[1] * 1000 + math.floor(T[2] / 1000)
local ev = string.format('{"t":%d,"e":"acked","a":1}', T)
local done = {}
for i = 1, #ARGV, 2 do
  local id = ARGV[i]
  local k = P..'m:'..id
  local m = redis.call('HMGET', k, 's', 'u', 'a')
  if m[1] == 'sent' and m[2] == ARGV[i + 1] then
    redis.call('HSET', k, 's', 'delivered', 'n', 3, 'e3', ev, 'da', T)
    redis.call('PEXPIREAT', k, T + 86400000, 'LT')
    done[#done + 1] = id
  end
end
if #done > 0 then redis.call('ZREM', P..'inflight', unpack(done)) end
return #done""",
}


@dataclass(frozen=True)
class Shape:
    """Messages per script call on each side, as measured in the e2e run."""

    accept: int = 62
    dispatch: int = 100
    ack: int = 77
    ack_users: int = 48  # users (frames) per ack call


@dataclass
class Msg:
    id: str
    user: str
    payload: bytes
    entry: str = ""


class Scripts:
    def __init__(self, r: aioredis.Redis) -> None:
        self.r = r
        self.src = {n: PRELUDE + body for n, (_, body) in STEPS.items()}
        self.src.update({n: "local P = KEYS[1]\n" + body for n, body in COMBINED.items()})
        self.sha = {n: hashlib.sha1(s.encode()).hexdigest() for n, s in self.src.items()}

    async def load(self) -> None:
        for s in self.src.values():
            await self.r.script_load(s)

    async def run(self, name: str, prefix: str, batches: Sequence[Sequence[Any]]) -> None:
        pipe = self.r.pipeline(transaction=False)
        for args in batches:
            pipe.evalsha(self.sha[name], 1, prefix, *args)
        await pipe.execute()


def _chunks(items: Sequence[Any], n: int) -> list[Sequence[Any]]:
    return [items[k : k + n] for k in range(0, len(items), max(n, 1))]


class Floor:
    """One keyspace (``prefix``, ``partitions``) of floor messages on a private Redis."""

    def __init__(self, r: aioredis.Redis, meter: Meter, *, prefix: str, users: int) -> None:
        self.r = r
        self.meter = meter
        self.prefix = prefix
        self.users = user_ids(users)
        self.partitions = 8
        self.scripts = Scripts(r)
        self.seq = 0

    def part(self, p: int) -> str:
        return f"{self.prefix}:{{p{p}}}:"

    async def setup(self) -> None:
        await self.scripts.load()
        now = int(time.time() * 1000)
        pipe = self.r.pipeline(transaction=False)
        for p in range(self.partitions):
            pipe.xgroup_create(self.part(p) + "q", GROUP, id="0", mkstream=True)
        for u in self.users:
            p = partition_of(u, self.partitions)
            pipe.zadd(f"{self.part(p)}u:{u}:conns", {f"node|c-{u}": now})
        await pipe.execute()

    def messages(self, n: int) -> dict[int, list[Msg]]:
        by_part: dict[int, list[Msg]] = {}
        for _ in range(n):
            i, self.seq = self.seq, self.seq + 1
            u = user_of(i, len(self.users))
            p = partition_of(u, self.partitions)
            mid = f"{p}-{i:020x}"
            by_part.setdefault(p, []).append(Msg(mid, u, orjson.dumps(payload(i))))
        return by_part

    async def read(self, by_part: dict[int, list[Msg]], count: int) -> int:
        """XREADGROUP every new entry, ``count`` per call and partition (top level)."""
        calls = 0
        for p, msgs in by_part.items():
            got: list[str] = []
            while len(got) < len(msgs):
                resp: Any = await self.r.xreadgroup(
                    GROUP, "c", {self.part(p) + "q": ">"}, count=count
                )
                calls += 1
                got += [e[0].decode() for _, entries in resp for e in entries]
            for m, entry in zip(msgs, got, strict=True):
                m.entry = entry
        return calls

    async def steps(self, n: int, shape: Shape) -> None:
        """Every step on its own (one script per step), over ``n`` new messages."""
        by_part = self.messages(n)
        t = str(int(time.time() * 1000))

        async def step(name: str, size: int, items: Any) -> None:
            async with self.meter.phase(f"step:{name}", messages=n):
                for p, msgs in by_part.items():
                    batches = [[t, *x] for x in _chunks(items(msgs), size * _width(items, msgs))]
                    await self.scripts.run(name, self.part(p), batches)

        await step("append", shape.accept, lambda ms: [a for m in ms for a in (m.id, m.user)])
        await step(
            "record", shape.accept, lambda ms: [a for m in ms for a in (m.id, m.user, m.payload)]
        )
        await step("lifetime", shape.accept, lambda ms: [m.id for m in ms])
        async with self.meter.phase("step:read", messages=n):
            await self.read(by_part, shape.dispatch)
        await step("check", shape.dispatch, lambda ms: [m.id for m in ms])
        async with self.meter.phase("step:presence", messages=n):
            for p, msgs in by_part.items():
                batches = [
                    [t, *dict.fromkeys(m.user for m in chunk)]
                    for chunk in _chunks(msgs, shape.dispatch)
                ]
                await self.scripts.run("presence", self.part(p), batches)
        await step("sent", shape.dispatch, lambda ms: [m.id for m in ms])
        await step("inflight_add", shape.dispatch, lambda ms: [m.id for m in ms])
        await step("xack", shape.dispatch, lambda ms: [m.entry for m in ms])
        async with self.meter.phase("step:trim", messages=n):
            for p, msgs in by_part.items():
                batches = [[t, chunk[-1].entry] for chunk in _chunks(msgs, shape.dispatch)]
                await self.scripts.run("trim", self.part(p), batches)
        await step("ack_check", shape.ack, lambda ms: [m.id for m in ms])
        await step("delivered", shape.ack, lambda ms: [m.id for m in ms])
        await step("inflight_del", shape.ack, lambda ms: [m.id for m in ms])
        await step("retain", shape.ack, lambda ms: [m.id for m in ms])

    async def combined(self, n: int, shape: Shape) -> None:
        """The three floor scripts over ``n`` new messages (phases floor:accept, ...)."""
        by_part = self.messages(n)

        async def phase(name: str, size: int, width: int, items: Any) -> None:
            async with self.meter.phase(f"floor:{name}", messages=n):
                for p, msgs in by_part.items():
                    await self.scripts.run(name, self.part(p), _chunks(items(msgs), size * width))

        await phase(
            "accept", shape.accept, 3, lambda ms: [a for m in ms for a in (m.id, m.user, m.payload)]
        )
        async with self.meter.phase("floor:read", messages=n):
            await self.read(by_part, shape.dispatch)
        await phase(
            "dispatch",
            shape.dispatch,
            3,
            lambda ms: [a for m in ms for a in (m.entry, m.id, m.user)],
        )
        await phase("ack", shape.ack, 2, lambda ms: [a for m in ms for a in (m.id, m.user)])

    async def scan(self, passes: int) -> None:
        """The retry scan of every partition, ``passes`` times (nothing is due)."""
        t = str(int(time.time() * 1000) - 60_000)
        async with self.meter.phase("step:retry_scan", passes=passes):
            for _ in range(passes):
                for p in range(self.partitions):
                    await self.scripts.run("retry_scan", self.part(p), [[t]])


def _width(items: Any, msgs: list[Msg]) -> int:
    """Arguments per message of an item builder."""
    return max(1, len(items(msgs[:1]))) if msgs else 1
