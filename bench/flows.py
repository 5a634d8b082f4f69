"""Message flows through Courier (``e2e``), python-socketio (``peer``) and a bare
websockets server (``raw``): the same users, messages, clients and measurements."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis.asyncio as aioredis

from api.redis_server import free_port
from api.runtime import load_settings, redis_client
from delivery.keys import Keyspace
from delivery.producer import Limits, Producer
from delivery.redis_clients import cluster_seed, node_url
from delivery.settings import Settings

from .common import ACK_DELAY_MS, Ticker, paced, payload, user_ids, user_of
from .driver import Child, Loadgens
from .measure import (
    command_delta,
    commandstats,
    delivered_count,
    finish_profile,
    start_profile,
    status_counts,
    stop_spy,
)
from .peer import CHANNEL, Emitter
from .procs import Stack, http_get, wait_http
from .report import Result, cdf_points, latency_summary


@dataclass
class Opts:
    users: int = 1000
    messages: int = 100_000
    rate: float | None = None
    url: str | None = None  # a running Courier (http://host:port); its Redis from settings
    redis_url: str | None = None  # a running Redis (redis+cluster://: a cluster) for ours
    cluster: bool = False  # start a local Redis Cluster (bench/cluster.py) for ours
    masters: int = 3
    replicas: int = 1
    appendfsync: str = "everysec"  # of the Redis (or the cluster's nodes) the bench starts
    sync_replicas: int = 0  # the bench's producer WAITs for this many replicas
    loadgens: int = 1
    servers: int = 1
    quiet: bool = False
    timeout: float = 170.0  # hard stop of one run, seconds
    idle_timeout: float = 10.0  # production done and nothing moved for this long: stop
    # Clients gather the ids received within 5 ms into one ack frame: under Courier's
    # rate limit (50 frames/s, burst 200) even while a backlog drains.
    ack_delay_ms: float = ACK_DELAY_MS
    profile: bool = False  # py-spy on the server and SLOWLOG on Redis: cost per layer
    server_settings: dict[str, Any] = field(default_factory=dict)
    # e2e: a task started with the messages (bench floor traces Redis with it); it is
    # awaited before the run's figures are read, so it must end by itself
    during: Callable[[Target], Coroutine[Any, Any, None]] | None = None


@dataclass
class Target:
    """Where the Courier under test is: its WebSocket URLs, Redis and keyspace."""

    ws_urls: list[str]
    http: list[tuple[str, int]]
    redis_url: str
    keyspace: Keyspace


async def courier_target(stack: Stack, o: Opts, **settings: Any) -> Target:
    if o.url:
        s = load_settings()  # COURIER_REDIS_URL, else the running courier serve's Redis
        stack.secret = s.jwt_secret or stack.secret
        stack.redis_url = s.require_redis_url()
        host, _, port = o.url.split("://", 1)[-1].rstrip("/").partition(":")
        return Target(
            [f"ws://{host}:{port}"],
            [(host, int(port))],
            stack.redis_url,
            s.keyspace(),
        )
    if o.cluster:
        stack.start_cluster(o.masters, o.replicas, o.appendfsync)
    else:
        stack.start_redis(o.redis_url, o.appendfsync)
    merged = {"max_connections": max(10_000, o.users + 100), **o.server_settings, **settings}
    ports = await stack.start_courier(o.servers, **merged)
    ks = Settings(
        redis_url=stack.redis_url,
        key_prefix=stack.prefix,
        partitions=int(merged.get("partitions", 8)),
        partition_tags=str(merged.get("partition_tags", "auto")),
    ).keyspace()
    return Target(
        [f"ws://127.0.0.1:{p}" for p in ports],
        [("127.0.0.1", p) for p in ports],
        stack.redis_url,
        ks,
    )


def redis_of(target: Target) -> Any:
    """The bench's own client of the target's Redis: a cluster client on a cluster."""
    return redis_client(target.redis_url, pubsub_key=target.keyspace.prefix)


async def stats_nodes(target: Target) -> list[aioredis.Redis]:
    """Plain clients of every master (one server: of it), for INFO commandstats."""
    seed = cluster_seed(target.redis_url)
    if seed is None:
        return [aioredis.Redis.from_url(target.redis_url)]
    probe: Any = redis_client(target.redis_url, pubsub_key=target.keyspace.prefix)
    try:
        await probe.initialize()
        masters = probe.get_primaries()
    finally:
        await probe.aclose()
    return [aioredis.Redis.from_url(node_url(seed, m.host, m.port)) for m in masters]


async def commandstats_of(nodes: list[aioredis.Redis]) -> dict[str, tuple[int, int]]:
    """INFO commandstats summed over ``nodes``."""
    out: dict[str, tuple[int, int]] = {}
    for n in nodes:
        for cmd, (calls, usec) in (await commandstats(n)).items():
            c0, u0 = out.get(cmd, (0, 0))
            out[cmd] = (c0 + calls, u0 + usec)
    return out


def shard_costs(cpu_seconds: dict[str, float], messages: int) -> dict[str, Any]:
    """Redis CPU per message on a cluster: per master, the masters', the replicas',
    and the busiest master's share of the masters' CPU (the spread: 1/masters ideal)."""
    masters = {r: s for r, s in cpu_seconds.items() if r.startswith("redis-master")}
    replicas = {r: s for r, s in cpu_seconds.items() if r.startswith("redis-replica")}
    if not masters:
        return {}
    total = sum(masters.values())
    per = max(messages, 1)
    return {
        "redis_masters_us_per_msg": round(total * 1e6 / per, 1),
        "redis_replicas_us_per_msg": round(sum(replicas.values()) * 1e6 / per, 1),
        "redis_per_master_us_per_msg": {r: round(s * 1e6 / per, 1) for r, s in masters.items()},
        "busiest_master_share": round(max(masters.values()) / total, 3) if total else 0.0,
    }


async def finish_loadgens(stack: Stack, lg: Loadgens) -> dict[str, Any]:
    """Read CPU and memory (the measured phase ends now), then collect the loadgens."""
    cpu, rss, ctx = stack.usage.cpu_seconds(), stack.usage.rss(), stack.usage.context()
    got = await lg.finish()
    got.update(cpu_seconds=cpu, rss_mb=rss, machine=ctx)
    return got


def cpu_per_message(cpu_seconds: dict[str, float], messages: int) -> dict[str, float]:
    """CPU microseconds per message, per process role."""
    return {role: round(s * 1e6 / max(messages, 1), 1) for role, s in cpu_seconds.items()}


def finish_result(
    label: str,
    o: Opts,
    stack: Stack,
    got: dict[str, Any],
    *,
    t0: float,
    t_end: float,
    done: int,
    connect: dict[str, Any],
    messages: int,
    **extra: Any,
) -> Result:
    lat = got["latencies_ms"]
    seconds = max(t_end - t0, 1e-6)
    return Result(
        scenario=label,
        users=o.users,
        messages=messages,
        throughput_msgs_per_s=done / seconds,
        latency_ms=latency_summary(lat),
        lost=messages - int(got.get("unique", 0)),
        duplicates=int(got.get("duplicates", 0)),
        connect_success_rate=connect["ok"] / max(1, o.users),
        cpu_seconds=got["cpu_seconds"],
        rss_mb=got["rss_mb"],
        extra={
            "rate": o.rate,
            "duration_s": round(seconds, 3),
            "connect_seconds": connect["seconds"],
            "reconnects": got.get("reconnects", 0),
            "errors": got.get("errors", {}),
            "cdf_ms": cdf_points(lat),
            "cpu_us_per_msg": cpu_per_message(got["cpu_seconds"], done),
            "machine": got.get("machine", {}),
            **extra,
        },
    )


async def start_clients(
    stack: Stack, o: Opts, mode: str, urls: list[str], users: list[str], within: float = 0
) -> tuple[Loadgens, dict[str, Any]]:
    """The load generators (``o.loadgens`` processes) with every client connected."""
    lg = await Loadgens.start(
        stack,
        mode=mode,
        urls=urls,
        users=users,
        processes=o.loadgens,
        expect_max=o.messages,
        ack_delay_ms=o.ack_delay_ms,
    )
    return lg, await lg.connected(within=within or o.timeout)


async def start_peer(stack: Stack) -> int:
    """python-socketio's server (``bench.peer``) on a free port; the port."""
    port = free_port()
    server = await Child.start(
        stack,
        "server",
        "bench.peer",
        {"port": port, "redis_url": stack.redis_url, "secret": stack.secret, "channel": CHANNEL},
    )
    await server.wait_for("listening", 30)
    await wait_http(port)
    return port


async def run_courier(o: Opts, label: str = "e2e") -> Result:
    """Courier end to end: producer -> stream -> worker -> edge -> client -> ack."""
    stack = Stack(label)
    tick = Ticker(label, quiet=o.quiet)
    try:
        target = await courier_target(stack, o)
        r = redis_of(target)
        nodes = await stats_nodes(target)
        limits = Limits(sync_replicas=o.sync_replicas, sync_timeout_ms=1000)
        producer = Producer(r, keyspace=target.keyspace, limits=limits)
        users = user_ids(o.users)
        delivered0 = await delivered_count(r, target.keyspace)  # a --url deployment's past
        lg, connect = await start_clients(stack, o, "courier", target.ws_urls, users)
        tick(
            f"{connect['ok']}/{o.users} clients connected in {connect['seconds']:.1f}s", force=True
        )

        async def send(first: int, n: int) -> None:
            await producer.submit_many(
                [
                    {"user_id": user_of(i, o.users), "payload": payload(i)}
                    for i in range(first, first + n)
                ]
            )

        cmds0 = await commandstats_of(nodes)
        spy = await start_profile(stack, r) if o.profile else None
        stack.usage.mark()
        t0 = time.time()
        enough = asyncio.Event()
        prod = asyncio.create_task(paced(o.messages, send, rate=o.rate, concurrency=2, stop=enough))
        side = asyncio.create_task(o.during(target)) if o.during else None
        done, last_poll = 0, 0.0
        last_move, last_seen = time.monotonic(), -1
        while True:
            # The loadgens report every 0.5 s; Redis is asked only near the end (or every
            # 2 s), so watching costs the system under test next to nothing.
            await asyncio.sleep(0.05)
            seen = lg.progress("unique")
            now = time.monotonic()
            if seen >= o.messages or now - last_poll > 2.0:
                done = await delivered_count(r, target.keyspace) - delivered0
                last_poll = now
            stack.usage.sample()
            if seen + done != last_seen:
                last_seen, last_move = seen + done, now
            tick(f"delivered {done:,}/{o.messages:,}  received {seen:,}")
            if done >= o.messages:
                break
            if prod.done() and time.monotonic() - last_move > o.idle_timeout:
                tick("no progress: stopping", force=True)
                break
            if time.time() - t0 > o.timeout:
                tick("time is up: stopping", force=True)
                break
        t_end = time.time()
        await stop_spy(spy)
        produce_s = await prod if prod.done() else None
        enough.set()  # a stopped run: batches in flight finish before anything is counted
        await prod
        if side is not None:
            await side
        got = await finish_loadgens(stack, lg)
        counts = await status_counts(r, target.keyspace, set(users))
        layers = await finish_profile(stack, r, spy, got, done) if o.profile else {}
        res = finish_result(
            label,
            o,
            stack,
            got,
            t0=t0,
            t_end=t_end,
            done=done,
            connect=connect,
            messages=o.messages,
            delivered=counts.get("delivered", 0),
            statuses=counts,
            redis_commands=command_delta(cmds0, await commandstats_of(nodes), o.messages),
            produce_seconds=round(produce_s, 3) if produce_s else None,
            **shard_costs(got["cpu_seconds"], done),
            **layers,
        )
        await r.aclose()
        for n in nodes:
            await n.aclose()
        return res
    finally:
        await stack.close()


async def run_peer(o: Opts, label: str = "peer") -> Result:
    """python-socketio AsyncServer + AsyncRedisManager, write-only emitter as producer."""
    stack = Stack(label)
    tick = Ticker(label, quiet=o.quiet)
    try:
        stack.start_redis()
        port = await start_peer(stack)
        users = user_ids(o.users)
        lg, connect = await start_clients(stack, o, "socketio", [f"ws://127.0.0.1:{port}"], users)
        tick(
            f"{connect['ok']}/{o.users} clients connected in {connect['seconds']:.1f}s", force=True
        )
        emitter = Emitter(stack.redis_url)

        async def send(first: int, n: int) -> None:
            await emitter.emit_range(first, n, o.users)

        stack.usage.mark()
        t0 = time.time()
        prod = asyncio.create_task(paced(o.messages, send, rate=o.rate))
        last_move, last_seen = time.monotonic(), -1
        while True:
            await asyncio.sleep(0.25)
            stack.usage.sample()
            seen = lg.progress("unique")
            if seen != last_seen:
                last_seen, last_move = seen, time.monotonic()
            tick(f"received {seen:,}/{o.messages:,}")
            if seen >= o.messages:
                break
            if prod.done() and time.monotonic() - last_move > min(o.idle_timeout, 5.0):
                break
            if time.time() - t0 > o.timeout:
                break
        produce_s = await prod if prod.done() else None
        if not prod.done():
            prod.cancel()
        await asyncio.sleep(0.3)  # the last acks on their way
        _, body = await http_get("127.0.0.1", port, "/stats")
        acked = orjson.loads(body)["acked"]
        got = await finish_loadgens(stack, lg)
        await emitter.aclose()
        return finish_result(
            label,
            o,
            stack,
            got,
            t0=t0,
            t_end=got.get("last_rx") or time.time(),
            done=int(got.get("unique", 0)),
            connect=connect,
            messages=o.messages,
            acked_at_server=acked,
            produce_seconds=round(produce_s, 3) if produce_s else None,
        )
    finally:
        await stack.close()


async def run_raw(o: Opts, label: str = "raw") -> Result:
    """The ceiling: a bare websockets server generating the same frames itself."""
    stack = Stack(label)
    tick = Ticker(label, quiet=o.quiet)
    try:
        port = free_port()
        server = await Child.start(
            stack,
            "server",
            "bench.rawserver",
            {
                "port": port,
                "secret": stack.secret,
                "users": o.users,
                "messages": o.messages,
                "rate": o.rate,
            },
        )
        await server.wait_for("listening", 30)
        users = user_ids(o.users)
        lg, connect = await start_clients(stack, o, "raw", [f"ws://127.0.0.1:{port}"], users)
        stack.usage.mark()
        await server.send("start")
        t0 = (await server.wait_for("started", 30))["t"]
        last_move, last_seen = time.monotonic(), -1
        while True:
            await asyncio.sleep(0.25)
            stack.usage.sample()
            seen = lg.progress("unique")
            if seen != last_seen:
                last_seen, last_move = seen, time.monotonic()
            tick(f"received {seen:,}/{o.messages:,}")
            if seen >= o.messages or time.time() - t0 > o.timeout:
                break
            if server.get("produced") and time.monotonic() - last_move > o.idle_timeout:
                break
        got = await finish_loadgens(stack, lg)
        return finish_result(
            label,
            o,
            stack,
            got,
            t0=t0,
            t_end=got.get("last_rx") or time.time(),
            done=int(got.get("unique", 0)),
            connect=connect,
            messages=o.messages,
        )
    finally:
        await stack.close()
