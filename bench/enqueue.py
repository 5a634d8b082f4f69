"""``enqueue``: the producer's batch path (``Producer.submit_many``) against a bare
redis-py pipeline of XADDs of the same payloads, same run, same private Redis.

Both sides get the same batches (500 messages), the same number of batches in flight
and the same asyncio client; the bare side writes each message as one XADD of its
user and payload, which is what a hand-rolled queue on Redis Streams would do.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
import redis.asyncio as aioredis

from delivery.keys import Keyspace
from delivery.producer import Limits, Producer

from .common import MAX_BATCH, Ticker, paced, payload, user_of
from .measure import command_delta, commandstats
from .procs import Stack
from .report import Result


async def _timed(
    name: str, total: int, send: Any, stack: Stack, concurrency: int, r: aioredis.Redis
) -> Result:
    cmds0 = await commandstats(r)
    stack.usage.mark()
    seconds = await paced(total, send, batch=MAX_BATCH, concurrency=concurrency)
    return Result(
        scenario="enqueue",
        messages=total,
        throughput_msgs_per_s=total / seconds,
        cpu_seconds=stack.usage.cpu_seconds(),
        rss_mb=stack.usage.rss(),
        extra={
            "label": name,
            "duration_s": round(seconds, 3),
            "batch": MAX_BATCH,
            "concurrency": concurrency,
            "redis_commands": command_delta(cmds0, await commandstats(r), total, top=4),
        },
    )


async def run_enqueue(
    *, messages: int, users: int, redis_url: str | None, concurrency: int = 2, quiet: bool = False
) -> list[Result]:
    """Returns [producer, bare]; the producer's result carries the ratio."""
    stack = Stack("enqueue")
    tick = Ticker("enqueue", quiet=quiet)
    try:
        url = stack.start_redis(redis_url)
        r = aioredis.Redis.from_url(url)
        ks = Keyspace(stack.prefix, 8)
        producer = Producer(r, keyspace=ks, limits=Limits())
        bare_key = f"{stack.prefix}:bare"
        await producer.send("warm-up", {"n": 0})  # loads the script

        async def via_producer(first: int, n: int) -> None:
            await producer.submit_many(
                [
                    {"user_id": user_of(i, users), "payload": payload(i)}
                    for i in range(first, first + n)
                ]
            )

        async def bare(first: int, n: int) -> None:
            pipe = r.pipeline(transaction=False)
            for i in range(first, first + n):
                pipe.xadd(bare_key, {"u": user_of(i, users), "pl": orjson.dumps(payload(i))})
            await pipe.execute()

        tick(f"producer: {messages:,} messages in batches of {MAX_BATCH}", force=True)
        mine = await _timed("producer", messages, via_producer, stack, concurrency, r)
        tick(f"bare XADD pipeline: {messages:,} messages", force=True)
        t0 = time.monotonic()
        ref = await _timed("bare_xadd", messages, bare, stack, concurrency, r)
        tick(f"done in {time.monotonic() - t0:.1f}s", force=True)
        ratio = mine.throughput_msgs_per_s / ref.throughput_msgs_per_s
        mine.extra["bare_xadd_msgs_per_s"] = round(ref.throughput_msgs_per_s, 1)
        mine.extra["ratio_to_bare"] = round(ratio, 3)
        await r.aclose()
        return [mine, ref]
    finally:
        await stack.close()
