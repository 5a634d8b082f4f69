"""Test doubles and a burst-mode harness that drives the pipeline without sleeping
longer than the due times under test."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis.asyncio as aioredis
from prometheus_client import REGISTRY
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from consumers.runner import read_groups
from consumers.scheduler import Scheduler
from consumers.worker import Worker
from delivery.keys import GROUP, Keyspace
from delivery.presence import Conn, Presence
from delivery.producer import Limits, Producer
from delivery.redis_clients import is_cluster, node_pubsub, node_subscribe
from delivery.store import Store, Timing
from delivery.transport import RedisTransport, decode_envelope

NODE = "test-node"

_PRIORITIES = ("high", "normal", "low")


def enqueued() -> dict[str, float]:
    """``courier_enqueued_total`` by priority, read from this process's registry."""
    return {
        p: REGISTRY.get_sample_value("courier_enqueued_total", {"priority": p}) or 0.0
        for p in _PRIORITIES
    }


def moved(before: dict[str, float]) -> dict[str, float]:
    now = enqueued()
    return {p: now[p] - before[p] for p in _PRIORITIES}


@dataclass
class Devices:
    """The test double of the edge: devices 'connected' on NODE that record frames."""

    frames: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    arrivals: list[dict[str, Any]] = field(default_factory=list)  # every user's, in order
    online: set[str] = field(default_factory=set)

    async def sink(self, user: str, conns: Sequence[str], frame: bytes, mid: str) -> int:
        if user not in self.online:
            return 0
        self.frames[user].append(orjson.loads(frame))
        self.arrivals.append(self.frames[user][-1])
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
        self.presence = Presence(
            r, keyspace=keyspace, heartbeat_timeout_ms=timing.heartbeat_timeout_ms
        )
        self.transport = RedisTransport(r, keyspace=keyspace, node_id=NODE, local=self.devices.sink)
        self.worker = Worker(
            r,
            store=self.store,
            transport=self.transport,
            keyspace=keyspace,
            consumer="test-consumer",
            block_ms=0,
        )
        self.scheduler = Scheduler(store=self.store, partitions=range(keyspace.partitions))
        self.read_groups = read_groups(keyspace, range(keyspace.partitions), cluster=is_cluster(r))

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
        for group in self.read_groups:  # as the runner's readers do
            n += await self.worker.process_one(group, block_ms=0)
        n += await self.worker.reclaim(range(self.keyspace.partitions))  # as its reclaimer
        done = await self.scheduler.tick()
        return n + sum(done.values())

    async def pump(
        self,
        until: Callable[[], Awaitable[bool]] | None = None,
        timeout: float = 10.0,  # noqa: ASYNC109
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


# -- helpers shared by tests/delivery and tests/consumers ----------------------------------


async def wait_until(
    cond: Callable[[], Awaitable[bool]], *, within: float = 10.0, every: float = 0.02
) -> None:
    """Poll ``cond`` until it holds; fail the test after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not await cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached in {within} s")
        await asyncio.sleep(every)


async def raw_timeline(r: aioredis.Redis, keyspace: Keyspace, mid: str) -> list[dict[str, Any]]:
    """A message's timeline events exactly as stored (t in server ms, e, a, detail)."""
    h = await r.hgetall(keyspace.msg(mid))
    n = int(h.get(b"n", 1))  # a message queued at once: its first event is implied
    first = {"t": int(h[b"ca"]), "e": "queued", "a": 0}
    return [
        orjson.loads(h[f"e{i}".encode()]) if f"e{i}".encode() in h else first
        for i in range(1, n + 1)
    ]


def neighbour(keyspace: Keyspace, user: str, stem: str = "other") -> str:
    """Another user id whose keys live in the same partition as ``user``'s."""
    part = keyspace.partition_of(user)
    for i in range(10_000):
        candidate = f"{stem}{i}"
        if candidate != user and keyspace.partition_of(candidate) == part:
            return candidate
    raise AssertionError("no user found in the same partition")


def spread_users(keyspace: Keyspace, per_partition: int = 2, stem: str = "u") -> list[str]:
    """User ids covering every partition ``per_partition`` times."""
    seen: dict[int, list[str]] = defaultdict(list)
    i = 0
    while any(len(seen[p]) < per_partition for p in range(keyspace.partitions)):
        u = f"{stem}{i}"
        if len(seen[keyspace.partition_of(u)]) < per_partition:
            seen[keyspace.partition_of(u)].append(u)
        i += 1
    return [u for p in range(keyspace.partitions) for u in seen[p]]


class NodeDevice:
    """Devices of many users held by one fake edge node in this process: presence is
    registered on ``node``, frames arrive on the node's pub/sub channel (as a real edge
    gets them from a ``courier worker``), and every message is acked through
    :meth:`Store.ack`. It survives Redis restarts: it resubscribes, keeps the acks it
    could not send, and like a device that reconnects it refreshes its presence and
    takes the messages parked meanwhile (every ``refresh_every`` seconds too).
    """

    def __init__(
        self,
        r: aioredis.Redis,
        store: Store,
        presence: Presence,
        node: str,
        users: Sequence[str],
        refresh_every: float = 0.5,
    ):
        self.r = r
        self.store = store
        self.presence = presence
        self.node = node
        self.users = list(users)
        self.refresh_every = refresh_every
        self.received: dict[str, int] = defaultdict(int)  # message id -> frames seen
        self.to_ack: dict[str, set[str]] = defaultdict(set)  # user -> ids
        self.errors = 0
        self.unparked: list[str] = []  # ids taken from the parked set, not pub/sub
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    def conn(self, user: str) -> Conn:
        return Conn(user, f"conn-{user}", self.node)

    async def start(self) -> NodeDevice:
        for u in self.users:
            await self.presence.connect(self.conn(u), device="test")
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._ready.wait(), 10)
        return self

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    @property
    def duplicates(self) -> int:
        return sum(n - 1 for n in self.received.values() if n > 1)

    def check(self) -> None:
        """Raise what stopped the device's loop, if it stopped."""
        if self._task is not None and self._task.done() and not self._task.cancelled():
            exc = self._task.exception()
            raise AssertionError(f"the test device stopped: {exc!r}") from exc

    async def _run(self) -> None:
        ks = self.store.keyspace
        channel = ks.node_channel(self.node)
        while True:
            pubsub = node_pubsub(self.r, channel, sharded=ks.sharded)
            try:
                await node_subscribe(pubsub, channel, sharded=ks.sharded)
                await self._refresh()
                self._ready.set()
                next_refresh = time.monotonic() + self.refresh_every
                while True:
                    raw = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.05)
                    while raw is not None:
                        user, _conns, _frame, mid = decode_envelope(raw["data"])
                        self._got(user, mid)
                        raw = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0)
                    await self._flush_acks()
                    if time.monotonic() >= next_refresh:
                        await self._refresh()
                        next_refresh = time.monotonic() + self.refresh_every
            except (RedisConnectionError, RedisTimeoutError, OSError):
                self.errors += 1
                await asyncio.sleep(0.05)
            finally:
                try:
                    await pubsub.aclose()
                except Exception:
                    pass

    def _got(self, user: str, mid: str) -> None:
        self.received[mid] += 1
        self.to_ack[user].add(mid)

    async def _refresh(self) -> None:
        await self.presence.touch(self.conn(u) for u in self.users)
        for u in self.users:
            remaining = 1
            while remaining:
                remaining, pushes = await self.store.unpark(
                    user_id=u, node_id=self.node, conn_id=f"conn-{u}", limit=500
                )
                for p in pushes:
                    self.unparked.append(p.id)
                    self._got(u, p.id)
        await self._flush_acks()

    async def _flush_acks(self) -> None:
        for user in list(self.to_ack):
            ids = sorted(self.to_ack[user])
            if ids:
                await self.store.ack(
                    user_id=user, conn_id=f"conn-{user}", node_id=self.node, message_ids=ids
                )
                self.to_ack[user].difference_update(ids)


async def ensure_groups(r: aioredis.Redis, keyspace: Keyspace) -> None:
    """Create the consumer group on every stream, as a running deployment has it."""
    for p in range(keyspace.partitions):
        for stream in keyspace.group_streams(p):
            try:
                await r.xgroup_create(stream, GROUP, id="0", mkstream=True)
            except ResponseError as e:
                if "BUSYGROUP" not in str(e):
                    raise


def worker_process(
    redis_url: str, keyspace: Keyspace, node: str, log_path: str, **settings: object
) -> subprocess.Popen[bytes]:
    """Start ``courier worker`` as its own process (its consumer name is ``node``)."""
    env = {
        **os.environ,
        "COURIER_REDIS_URL": redis_url,
        "COURIER_KEY_PREFIX": keyspace.prefix,
        "COURIER_PARTITIONS": str(keyspace.partitions),
        "COURIER_NODE_ID": node,
        "COURIER_DATA_DIR": os.path.dirname(log_path),
        "COURIER_LOG_LEVEL": "INFO",
    }
    env.pop("REDIS_URL", None)
    env.update({f"COURIER_{k.upper()}": str(v) for k, v in settings.items()})
    courier = os.path.join(os.path.dirname(sys.executable), "courier")
    with open(log_path, "ab") as out:
        return subprocess.Popen([courier, "worker"], env=env, stdout=out, stderr=out)


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """End a process this test started: SIGCONT (if stopped), SIGTERM, then SIGKILL."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGCONT)
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
