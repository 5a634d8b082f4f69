"""A consumers process that stops cleanly (SIGTERM) leaves no ghost: its name leaves
the consumer group of every stream where it holds nothing, and its heartbeat goes, so
`GET /v1/stats` (and `courier stats`, the console) no longer list it. Where it still
holds entries (in-flight records of sent messages) it stays: removing it would drop
them."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as aioredis

from delivery.fields import MessageField
from delivery.groups import leave
from delivery.keys import GROUP, Keyspace
from delivery.producer import Producer
from delivery.scripts import Scripts
from tests.api.admin_support import wait_for
from tests.processes import COURIER, serve_env


async def _names(r: aioredis.Redis, keyspace: Keyspace) -> dict[str, int]:
    """Every consumer of the message groups: name -> entries it holds."""
    held: dict[str, int] = {}
    for p in range(keyspace.partitions):
        for stream in keyspace.group_streams(p):
            try:
                rows = await r.xinfo_consumers(stream, GROUP)
            except aioredis.ResponseError:
                continue
            for c in rows:
                name = c["name"].decode() if isinstance(c["name"], bytes) else c["name"]
                held[name] = held.get(name, 0) + int(c["pending"])
    return held


async def test_a_stopped_worker_leaves_the_group_and_stats(
    r: aioredis.Redis, keyspace: Keyspace, redis_url: str, tmp_path: Path
) -> None:
    env = serve_env("worker", redis_url, keyspace, tmp_path)
    name = env["COURIER_NODE_ID"]

    async def stats() -> dict[str, Any]:
        proc = await asyncio.to_thread(
            subprocess.run, [COURIER, "stats", "--json"], env=env, capture_output=True, timeout=60
        )
        assert proc.returncode == 0, proc.stderr
        return orjson.loads(proc.stdout)  # type: ignore[no-any-return]

    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen([COURIER, "worker"], env=env, stdout=out, stderr=out)  # noqa: ASYNC220
    try:
        producer = Producer(r, keyspace=keyspace)
        ids = [(await producer.send(f"away-{i}", {"n": i})).id for i in range(6)]
        for mid in ids:  # the only consumer: it read them all and parked them
            await wait_for(lambda mid=mid: _status(r, keyspace, mid, "parked"))
        before = await stats()
        assert name in {c["name"] for c in before["consumers"] if c["alive"]}, before
        assert name in await _names(r, keyspace)
        worker.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(worker.wait, 20) == 0, log.read_text()
    finally:
        if worker.poll() is None:
            worker.kill()
    assert "consumers stopped: " + name in log.read_text()
    assert name not in await _names(r, keyspace)
    assert await r.zscore(keyspace.consumer_beats, name) is None
    after = await stats()
    assert name not in {c["name"] for c in after["consumers"]}, after["consumers"]


async def _status(r: aioredis.Redis, keyspace: Keyspace, mid: str, status: str) -> bool:
    return await r.hget(keyspace.msg(mid), MessageField.STATUS) == status.encode()


async def test_a_consumer_holding_entries_stays_where_it_holds_them(
    r: aioredis.Redis, keyspace: Keyspace
) -> None:
    part = keyspace.partition_of("alice")
    stream, other = keyspace.stream(part, "normal"), keyspace.stream(part, "high")
    for s in (stream, other):
        await r.xgroup_create(s, GROUP, id="0", mkstream=True)
    await r.xadd(stream, {"m": "x"})
    await r.xreadgroup(GROUP, "holder", {stream: ">"})  # one entry pending: in flight
    await r.xgroup_createconsumer(other, GROUP, "holder")
    await r.xgroup_createconsumer(stream, GROUP, "idle")
    scripts = Scripts(r)
    assert await leave(scripts, keyspace, range(keyspace.partitions), "holder") == 1
    assert await leave(scripts, keyspace, range(keyspace.partitions), "idle") == 0
    assert [c["name"] for c in await r.xinfo_consumers(stream, GROUP)] == [b"holder"]
    assert (await r.xpending(stream, GROUP))["pending"] == 1, "its entry is kept"
    assert await r.xinfo_consumers(other, GROUP) == [], "left where it held nothing"
    assert await leave(scripts, keyspace, range(keyspace.partitions), "nobody") == 0
