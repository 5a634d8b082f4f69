"""Run the consumers of one process: the readers, the scheduler, the reclaimer of dead
consumers' entries, housekeeping and the process's published totals
(:mod:`delivery.totals`), each a resilient loop.

On one Redis server a single reader takes every partition's streams in one blocking
``XREADGROUP``; on Redis Cluster a command's keys must share a slot, so there is one
reader per partition (each has its own hash tag)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import redis.asyncio as aioredis

from delivery import groups
from delivery.keys import GROUP, Keyspace
from delivery.redis_clients import is_cluster
from delivery.store import Store
from delivery.text import text
from delivery.totals import Totals
from delivery.transport import Transport

from .heartbeat import Heartbeat
from .resilience import Step, forever
from .scheduler import Scheduler
from .webhooks import GROUP as WEBHOOK_GROUP
from .webhooks import WebhookDispatcher
from .worker import Worker

log = logging.getLogger(__name__)

IDLE_CONSUMER_MS = 3_600_000


def read_groups(keyspace: Keyspace, partitions: Sequence[int], *, cluster: bool) -> list[list[int]]:
    """The partitions each reader takes with one XREADGROUP: all of them on one server;
    on Redis Cluster one each, because every partition has a hash tag (a slot) of its
    own and a multi-key command is refused across slots, even on one node."""
    if cluster:
        return [[p] for p in partitions]
    return [list(partitions)] if partitions else []


class Consumers:
    """Everything `courier worker` runs, startable inside `courier serve` too."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        store: Store,
        transport: Transport,
        keyspace: Keyspace,
        consumer: str,
        read_count: int = 100,
        block_ms: int = 1000,
        poison_deliveries: int = 5,
        scheduler_interval: float = 0.25,
        heartbeat_seconds: float = 5.0,
        partitions: Sequence[int] | None = None,
        webhooks: WebhookDispatcher | None = None,
    ) -> None:
        self.redis = client
        self.webhooks = webhooks
        self.keyspace = keyspace
        self.partitions = list(partitions if partitions is not None else range(keyspace.partitions))
        self.worker = Worker(
            client,
            store=store,
            transport=transport,
            keyspace=keyspace,
            consumer=consumer,
            read_count=read_count,
            block_ms=block_ms,
            poison_deliveries=poison_deliveries,
        )
        self.scheduler = Scheduler(
            store=store, partitions=self.partitions, interval=scheduler_interval
        )
        self.heartbeat = Heartbeat(
            client, keyspace=keyspace, consumer=consumer, interval=heartbeat_seconds
        )
        self.totals = Totals(client, keyspace=keyspace, process=consumer)
        # what waits past the ack timeout is found at the scheduler's pace
        self.claim_every = scheduler_interval
        self.stop_event = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []
        self.started = False

    async def start(self) -> None:
        await self.worker.ensure_groups(self.partitions)
        await self.heartbeat.beat()  # counted alive from the start
        await self.totals.publish()  # this process is counted from the start
        self.stop_event.clear()
        cluster = is_cluster(self.redis)
        groups = read_groups(self.keyspace, self.partitions, cluster=cluster)
        for group in groups:
            name = f"reader-{group[0]}" if len(group) == 1 else "reader"
            self.tasks.append(self._spawn(name, self._reader(group, ahead=not cluster)))
        self.tasks.append(self._spawn("scheduler", self.scheduler.step))
        self.tasks.append(self._spawn("reclaimer", self._reclaim))
        self.tasks.append(self._spawn("housekeeping", self._housekeeping))
        self.tasks.append(self._spawn("heartbeat", self.heartbeat.beat))
        self.tasks.append(self._spawn("totals", self.totals.publish))
        if self.webhooks is not None:
            await self.webhooks.start()
        self.started = True
        log.info(
            "consumers started: %s on %d partitions, %d readers",
            self.worker.consumer,
            len(self.partitions),
            len(groups),
        )

    async def stop(self) -> None:
        self.stop_event.set()
        if self.webhooks is not None:
            await self.webhooks.stop()
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks.clear()
        await self.worker.close()
        kept = await self._leave_groups()
        await self.heartbeat.leave()
        await self.totals.leave()
        self.started = False
        log.info(
            "consumers stopped: %s%s",
            self.worker.consumer,
            f" (kept by {kept} streams: it holds messages waiting for an ack)" if kept else "",
        )

    async def _leave_groups(self) -> int:
        """Leave the group where this consumer holds nothing (delivery/groups.py); the
        number of streams that keep it. Redis may be gone at shutdown: then its name
        stays until housekeeping forgets it."""
        try:
            return await groups.leave(
                self.worker.store.scripts, self.keyspace, self.partitions, self.worker.consumer
            )
        except Exception:
            log.warning(
                "could not leave the consumer group as %s", self.worker.consumer, exc_info=True
            )
            return 0

    @property
    def alive(self) -> bool:
        return self.started and all(not t.done() for t in self.tasks)

    def _spawn(self, name: str, step: Step) -> asyncio.Task[None]:
        return asyncio.create_task(forever(name, step, self.stop_event), name=name)

    def _reader(self, partitions: list[int], *, ahead: bool) -> Step:
        async def step() -> float | None:
            if ahead:  # one server, one reader: its next read goes with the dispatch
                await self.worker.process_next(partitions)
            else:
                await self.worker.process_one(partitions)
            return None

        return step

    async def _reclaim(self) -> float:
        await self.worker.reclaim(self.partitions)
        return self.claim_every

    async def _housekeeping(self) -> float:
        """Forget consumers of the groups (message streams; the webhook dispatcher's on the
        events streams) that are idle for an hour and hold nothing."""
        for p in self.partitions:
            groups = [(stream, GROUP) for stream in self.keyspace.group_streams(p)]
            if self.webhooks is not None:
                groups.append((self.keyspace.events(p), WEBHOOK_GROUP))
            for stream, group in groups:
                try:
                    consumers = await self.redis.xinfo_consumers(stream, group)
                except aioredis.ResponseError:
                    continue
                for c in consumers:
                    name = text(c["name"])
                    if c["pending"] == 0 and c["idle"] > IDLE_CONSUMER_MS:
                        await self.redis.xgroup_delconsumer(stream, group, name)
        return 60.0
