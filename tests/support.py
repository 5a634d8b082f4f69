"""Test doubles and a burst-mode harness that drives the pipeline without sleeping
longer than the due times under test."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis.asyncio as aioredis

from consumers.scheduler import Scheduler
from consumers.worker import Worker
from delivery.keys import Keyspace
from delivery.presence import Conn, Presence
from delivery.producer import Limits, Producer
from delivery.store import Store, Timing
from delivery.transport import RedisTransport

NODE = "test-node"


@dataclass
class Devices:
    """The test double of the edge: devices 'connected' on NODE that record frames."""

    frames: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    online: set[str] = field(default_factory=set)

    async def sink(self, user: str, conns: Sequence[str], frame: bytes, mid: str) -> int:
        if user not in self.online:
            return 0
        self.frames[user].append(orjson.loads(frame))
        return len(conns)

    def ids(self, user: str) -> list[str]:
        return [f["id"] for f in self.frames[user]]


class Harness:
    def __init__(self, r: aioredis.Redis, keyspace: Keyspace, timing: Timing, limits: Limits):
        self.r = r
        self.keyspace = keyspace
        self.devices = Devices()
        self.producer = Producer(r, keyspace=keyspace, limits=limits)
        self.store = Store(r, keyspace=keyspace, timing=timing)
        self.presence = Presence(r, keyspace=keyspace,
                                 heartbeat_timeout_ms=timing.heartbeat_timeout_ms)
        self.transport = RedisTransport(r, keyspace=keyspace, node_id=NODE,
                                        local=self.devices.sink)
        self.worker = Worker(r, store=self.store, transport=self.transport, keyspace=keyspace,
                             consumer="test-consumer", block_ms=0, claim_idle_ms=50)
        self.scheduler = Scheduler(store=self.store, partitions=range(keyspace.partitions))

    async def start(self) -> Harness:
        await self.worker.ensure_groups()
        return self

    async def connect(self, user: str, conn: str = "c1") -> None:
        self.devices.online.add(user)
        await self.presence.connect(Conn(user, conn, NODE), device="test")

    async def disconnect(self, user: str, conn: str = "c1") -> None:
        self.devices.online.discard(user)
        await self.presence.disconnect(Conn(user, conn, NODE), unacked=(), reason="test")

    async def pump_once(self) -> int:
        n = 0
        for p in range(self.keyspace.partitions):
            n += await self.worker.process_one(p, block_ms=0)
        done = await self.scheduler.tick()
        return n + sum(done.values())

    async def pump(
        self, until: Callable[[], Awaitable[bool]] | None = None, timeout: float = 10.0
    ) -> None:
        """Drive readers and scheduler until `until()` holds (or nothing is left to do)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            n = await self.pump_once()
            if until is None:
                if n == 0:
                    return
            elif await until():
                return
            await asyncio.sleep(0.01)
        raise AssertionError("condition not reached in time")

    async def status(self, mid: str) -> str:
        return str((await self.store.get(mid)).status)

    async def ack(self, user: str, ids: Sequence[str], conn: str = "c1") -> dict[str, str]:
        return await self.store.ack(user_id=user, conn_id=conn, node_id=NODE, message_ids=ids)

    async def keys(self) -> set[str]:
        return {k.decode() async for k in self.r.scan_iter(match=self.keyspace.pattern())}
