"""Today's scripts one by one, through Courier's own code, on a private Redis that
nothing else talks to: the producer's ``submit_many`` (``enqueue_many.lua``), a
worker's ``process_one`` (``XREADGROUP`` + ``dispatch_many.lua``), the edge's
``Store.ack_many`` (``ack_many.lua``) and the scheduler's pass (``Store.sweep``:
``promote``, ``due`` and ``expire`` of every partition).

The batches have the sizes the e2e run had (messages per script call, read from its
SLOWLOG trace), in cycles of accept all, dispatch all, ack all; each phase is measured
on its own (:mod:`bench.floor_meter`), so every command the scripts run is charged to
its script.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis.asyncio as aioredis

from consumers.worker import Worker
from delivery.keys import Keyspace
from delivery.presence import Conn, Presence
from delivery.producer import Limits, Producer
from delivery.store import AckRequest, Push, Store, Timing

from .common import payload, user_ids, user_of
from .floor_lua import Shape
from .floor_meter import Meter
from .measure import totals

NODE = "floor-node"


class Recorder:
    """A transport that keeps what was pushed (every push reached its connection)."""

    def __init__(self) -> None:
        self.pushes: list[Push] = []

    async def push(self, pushes: Sequence[Push]) -> list[Push]:
        self.pushes += pushes
        return []


def ack_calls(pushes: Sequence[Push], keyspace: Keyspace, shape: Shape) -> list[list[AckRequest]]:
    """The acks of ``pushes`` as ``Store.ack_many`` calls in which each partition has
    about ``shape.ack`` ids from ``shape.ack_users`` users (one frame per user)."""
    queues: dict[int, dict[str, list[Push]]] = {}
    for p in pushes:
        queues.setdefault(keyspace.partition_of(p.user_id), {}).setdefault(p.user_id, []).append(p)
    calls: list[list[AckRequest]] = []
    want_users = max(1, min(shape.ack_users, shape.ack))
    while any(queues.values()):
        batch = []
        for users in queues.values():
            chosen = list(users)[:want_users]
            left = shape.ack  # ids of this call, spread evenly over its users
            for k, user in enumerate(chosen):
                share = -(-left // (len(chosen) - k))  # ceil(left / users still to go)
                if share <= 0:
                    break
                mine = users[user]
                take, users[user] = mine[:share], mine[share:]
                if not users[user]:
                    del users[user]
                node, conn = take[0].targets[0]
                batch.append(AckRequest(user, conn, node, [p.id for p in take]))
                left -= len(take)
        calls.append(batch)
    return calls


class Replay:
    def __init__(self, r: aioredis.Redis, meter: Meter, *, prefix: str, users: int) -> None:
        self.r = r
        self.meter = meter
        self.keyspace = Keyspace(prefix, 8)
        self.users = user_ids(users)
        self.store = Store(r, keyspace=self.keyspace, timing=Timing())
        self.producer = Producer(r, keyspace=self.keyspace, limits=Limits())
        self.transport = Recorder()
        self.seq = 0

    def worker(self, read_count: int) -> Worker:
        return Worker(
            self.r,
            store=self.store,
            transport=self.transport,
            keyspace=self.keyspace,
            consumer="floor",
            read_count=read_count,
        )

    async def setup(self) -> None:
        await self.worker(1).ensure_groups()
        presence = Presence(
            self.r, keyspace=self.keyspace, heartbeat_timeout_ms=Timing().heartbeat_timeout_ms
        )
        for u in self.users:
            await presence.connect(Conn(u, f"c-{u}", NODE))

    async def cycle(self, n: int, shape: Shape, *, measure: bool = True) -> None:
        """Accept ``n`` messages, dispatch them all, ack them all, one scheduler pass."""
        m = n if measure else 0
        first, self.seq = self.seq, self.seq + n
        items = [
            {"user_id": user_of(i, len(self.users)), "payload": payload(i)}
            for i in range(first, first + n)
        ]
        parts = self.keyspace.partitions
        async with self.meter.phase("enqueue_many" if measure else "warm-up", messages=m):
            for k in range(0, n, shape.accept * parts):
                await self.producer.submit_many(items[k : k + shape.accept * parts])
        worker = self.worker(shape.dispatch)
        async with self.meter.phase("dispatch_many" if measure else "warm-up", messages=m):
            while await worker.process_one(range(parts), block_ms=0):
                pass
        pushes, self.transport.pushes = self.transport.pushes, []
        if len(pushes) != n:
            raise RuntimeError(f"{len(pushes)} of {n} messages were sent")
        calls = ack_calls(pushes, self.keyspace, shape)
        async with self.meter.phase("ack_many" if measure else "warm-up", messages=m):
            for batch in calls:
                await self.store.ack_many(batch)
        async with self.meter.phase("sweep" if measure else "warm-up", passes=int(measure)):
            await self.store.sweep(range(parts))

    async def check(self, n: int) -> None:
        """Every measured message ended ``delivered``: the replay did the real work."""
        got = await totals(self.r, self.keyspace, "delivered")
        if got != n:
            raise RuntimeError(f"replay: {got} of {n} messages delivered")
