"""``connections``, ``drain`` and ``overload``: what one edge holds, how fast a backlog
drains, and what happens when producers outrun delivery (Courier beside the peer)."""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

import redis.asyncio as aioredis

from delivery.producer import Limits, Producer

from .common import ACK_DELAY_MS, Ticker, paced, payload, user_ids, user_of
from .driver import Loadgens
from .flows import Opts, courier_target, finish_loadgens, start_clients, start_peer
from .measure import command_delta, commandstats, delivered_count, status_counts, totals
from .peer import Emitter
from .procs import Stack, http_get
from .report import Result, latency_summary

PORTS_PER_ADDRESS = 28_000  # the ephemeral port range of one loopback source address


async def run_connections(
    *, connections: int, hold: float, url: str | None, quiet: bool = False
) -> Result:
    """Idle connections with heartbeats on one edge: connect rate, success, memory."""
    stack = Stack("connections")
    tick = Ticker("connections", quiet=quiet)
    o = Opts(users=connections, url=url)
    try:
        heartbeat = 15.0  # clients ping twice per server heartbeat interval (30 s default)
        target = await courier_target(stack, o, max_connections=connections + 100)
        servers = [p for p in stack.usage.procs if p.role == "server"]
        await asyncio.sleep(1.0)  # let the server settle before the baseline
        rss0 = sum(p.rss_mb() for p in servers)
        n_addr = math.ceil(connections / PORTS_PER_ADDRESS)
        addrs = [f"127.0.0.{k + 1}" for k in range(n_addr)] if n_addr > 1 else []
        lg = await Loadgens.start(
            stack,
            mode="idle",
            urls=target.ws_urls,
            users=user_ids(connections),
            processes=max(1, math.ceil(connections / 10_000)),
            heartbeat_seconds=heartbeat,
            connect_concurrency=100,
            local_addrs=addrs,
        )
        stack.usage.mark()
        while not all(c.get("connected") for c in lg.children):
            await asyncio.sleep(0.5)
            tick(f"connected {lg.progress('connected'):,}/{connections:,}")
        connect = await lg.connected(within=60)
        tick(
            f"{connect['ok']:,} connected in {connect['seconds']:.1f}s; holding {hold:.0f}s",
            force=True,
        )
        t_hold = time.monotonic()
        while time.monotonic() - t_hold < hold:
            await asyncio.sleep(1.0)
            stack.usage.sample()
            tick(f"holding: {lg.progress('connected'):,} open, {lg.progress('pongs'):,} pongs")
        rss1 = sum(p.rss_mb() for p in servers)
        held = lg.progress("connected")
        got = await finish_loadgens(stack, lg)
        ok = connect["ok"]
        return Result(
            scenario="connections",
            users=connections,
            connect_success_rate=ok / max(1, connections),
            cpu_seconds=got["cpu_seconds"],
            rss_mb=got["rss_mb"],
            extra={
                "connections": connections,
                "connected": ok,
                "held_after_s": {"seconds": hold, "open": held},
                "connect_seconds": connect["seconds"],
                "connects_per_s": round(ok / max(connect["seconds"], 1e-6), 1),
                "server_rss_before_mb": round(rss0, 1),
                "server_rss_after_mb": round(rss1, 1),
                "kb_per_connection": round((rss1 - rss0) * 1000 / max(ok, 1), 2),
                "pongs": got.get("pongs", 0),
                "errors": got.get("errors", {}),
                "source_addresses": max(1, n_addr),
            },
        )
    finally:
        await stack.close()


async def run_drain(*, backlog: int, url: str | None, quiet: bool = False) -> Result:
    """One user with ``backlog`` parked messages connects: time to receive and ack all."""
    stack = Stack("drain")
    tick = Ticker("drain", quiet=quiet)
    o = Opts(users=1, messages=backlog, url=url)
    try:
        target = await courier_target(stack, o)
        r = aioredis.Redis.from_url(target.redis_url)
        producer = Producer(r, keyspace=target.keyspace, limits=Limits())
        user = f"drainer-{stack.prefix}"
        ks = target.keyspace
        parked0, delivered0 = await totals(r, ks, "parked"), await delivered_count(r, ks)

        async def send(first: int, n: int) -> None:
            await producer.submit_many(
                [{"user_id": user, "payload": payload(i)} for i in range(first, first + n)]
            )

        await paced(backlog, send, concurrency=2)
        deadline = time.monotonic() + 120
        while await totals(r, ks, "parked") - parked0 < backlog:
            if time.monotonic() > deadline:
                raise TimeoutError("the backlog was not parked in 120 s")
            await asyncio.sleep(0.1)
            tick(f"parked {await totals(r, ks, 'parked') - parked0:,}/{backlog:,}")
        tick(f"{backlog:,} messages parked; connecting", force=True)
        cmds0 = await commandstats(r)
        stack.usage.mark()
        lg = await Loadgens.start(
            stack,
            mode="courier",
            urls=target.ws_urls,
            users=[user],
            expect_max=backlog,
            ack_delay_ms=ACK_DELAY_MS,
        )
        connect = await lg.connected(within=60)
        done = 0
        while done < backlog and time.time() - connect["t"] < 150:
            await asyncio.sleep(0.02)
            done = await delivered_count(r, ks) - delivered0
        t_end = time.time()
        got = await finish_loadgens(stack, lg)
        seconds = t_end - connect["t"]
        res = Result(
            scenario="drain",
            users=1,
            messages=backlog,
            throughput_msgs_per_s=done / max(seconds, 1e-6),
            lost=backlog - int(got.get("unique", 0)),
            duplicates=int(got.get("duplicates", 0)),
            connect_success_rate=connect["ok"],
            cpu_seconds=got["cpu_seconds"],
            rss_mb=got["rss_mb"],
            extra={
                "backlog": backlog,
                "drain_seconds": round(seconds, 3),
                "received_all_s": round(got["last_rx"] - connect["t"], 3)
                if got["last_rx"]
                else None,
                "delivered": done,
                "redis_commands": command_delta(cmds0, await commandstats(r), backlog, top=4),
            },
        )
        # No per-message latency here: the time that matters is the whole drain.
        res.latency_ms = {"p50": 0.0, "p95": 0.0, "p99": 0.0, "max": round(seconds * 1000, 1)}
        await r.aclose()
        return res
    finally:
        await stack.close()


async def _probe_health(
    port: int, out: list[float], errors: list[str], stop: asyncio.Event
) -> None:
    """GET /healthz every 100 ms; latency in ms (5 s timeout counts as an error)."""
    while not stop.is_set():
        t = time.perf_counter()
        try:
            status, _ = await http_get("127.0.0.1", port, "/healthz", within=5.0)
            out.append((time.perf_counter() - t) * 1000)
            if status != 200:
                errors.append(str(status))
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as e:
            errors.append(type(e).__name__)
        await asyncio.sleep(0.1)


async def run_overload_courier(o: Opts, window: float) -> Result:
    """Burst ``o.messages`` through the producer; deliver for ``window`` seconds; then
    account for every accepted message (delivered, or still held in Redis)."""
    stack = Stack("overload")
    tick = Ticker("overload/courier", quiet=o.quiet)
    try:
        target = await courier_target(stack, o)
        r = aioredis.Redis.from_url(target.redis_url)
        producer = Producer(r, keyspace=target.keyspace, limits=Limits())
        users = user_ids(o.users)
        delivered0 = await delivered_count(r, target.keyspace)
        lg, connect = await start_clients(stack, o, "courier", target.ws_urls, users, within=120)
        health: list[float] = []
        herr: list[str] = []
        stop = asyncio.Event()
        prober = asyncio.create_task(_probe_health(target.http[0][1], health, herr, stop))
        accepted = 0

        async def send(first: int, n: int) -> None:
            nonlocal accepted
            res = await producer.submit_many(
                [
                    {"user_id": user_of(i, o.users), "payload": payload(i)}
                    for i in range(first, first + n)
                ]
            )
            accepted += len(res)

        stack.usage.mark()
        t0 = time.time()
        enough = asyncio.Event()
        prod = asyncio.create_task(paced(o.messages, send, concurrency=2, stop=enough))
        done, last_poll = 0, 0.0
        while time.time() - t0 < window:
            await asyncio.sleep(0.25)
            stack.usage.sample()
            if time.monotonic() - last_poll > 3 or lg.progress("unique") >= o.messages:
                done = await delivered_count(r, target.keyspace) - delivered0
                last_poll = time.monotonic()
            tick(
                f"accepted {accepted:,}  delivered {done:,}  received "
                f"{lg.progress('unique'):,}  /healthz max {max(health or [0]):.0f} ms"
            )
            if done >= o.messages:
                break
        t_end = time.time()
        burst_s = await prod if prod.done() else None
        enough.set()  # the burst stops here; batches in flight finish before the count
        await prod
        stop.set()
        await prober
        got = await finish_loadgens(stack, lg)
        counts = await status_counts(r, target.keyspace, set(users))
        held = sum(v for k, v in counts.items() if k != "delivered")
        await r.aclose()
        return Result(
            scenario="overload",
            users=o.users,
            messages=o.messages,
            throughput_msgs_per_s=counts.get("delivered", 0) / max(t_end - t0, 1e-6),
            latency_ms=latency_summary(got["latencies_ms"]),
            # Lost: accepted, yet neither delivered nor held anywhere in Redis.
            lost=accepted - counts.get("delivered", 0) - held,
            duplicates=int(got.get("duplicates", 0)),
            connect_success_rate=connect["ok"] / max(1, o.users),
            cpu_seconds=got["cpu_seconds"],
            rss_mb=got["rss_mb"],
            extra={
                "label": "courier",
                "accepted": accepted,
                "burst_seconds": round(burst_s, 2) if burst_s else None,
                "burst_msgs_per_s": round(accepted / (burst_s or (t_end - t0)), 1),
                "window_s": round(t_end - t0, 1),
                "delivered": counts.get("delivered", 0),
                "still_held_in_redis": held,
                "statuses": counts,
                "received_unique": got.get("unique", 0),
                "healthz_ms": latency_summary(health),
                "healthz_errors": len(herr),
                "reconnects": got.get("reconnects", 0),
                "closes": got.get("closes", {}),
            },
        )
    finally:
        await stack.close()


async def run_overload_peer(o: Opts, window: float) -> Result:
    """The same burst through python-socketio's Redis manager (pub/sub, best effort), for
    the same window; lost = emitted but never received by a client."""
    stack = Stack("overload-peer")
    tick = Ticker("overload/peer", quiet=o.quiet)
    try:
        stack.start_redis()
        port = await start_peer(stack)
        lg, connect = await start_clients(
            stack, o, "socketio", [f"ws://127.0.0.1:{port}"], user_ids(o.users), within=120
        )
        health: list[float] = []
        herr: list[str] = []
        stop = asyncio.Event()
        prober = asyncio.create_task(_probe_health(port, health, herr, stop))
        emitter = Emitter(stack.redis_url)

        async def send(first: int, n: int) -> None:
            await emitter.emit_range(first, n, o.users)

        stack.usage.mark()
        t0 = time.time()
        enough = asyncio.Event()
        # One batch at a time (64 emits in flight), as in `peer`: more made redis-py's
        # pool in the manager fail publishes ("Cannot publish to redis") and slowed it.
        prod = asyncio.create_task(paced(o.messages, send, stop=enough))
        last, last_move = -1, time.monotonic()
        while True:
            await asyncio.sleep(0.25)
            seen = lg.progress("unique")
            if seen != last:
                last, last_move = seen, time.monotonic()
            tick(
                f"emitted {emitter.published:,}  received {seen:,}  "
                f"/healthz max {max(health or [0]):.0f} ms"
            )
            if time.time() - t0 >= window:
                enough.set()  # the burst ends with the window, as Courier's
            if seen >= o.messages or (prod.done() and time.monotonic() - last_move > 5):
                break
            if time.time() - t0 > window + 60:
                break
        burst_s = await prod if prod.done() else None
        if not prod.done():
            prod.cancel()
        stop.set()
        await prober
        got = await finish_loadgens(stack, lg)
        await emitter.aclose()
        t_end = got.get("last_rx") or time.time()
        info: dict[str, Any] = {}
        try:
            r = aioredis.Redis.from_url(stack.redis_url)
            info = await r.info("stats")
            await r.aclose()
        except Exception:  # only for the report
            pass
        return Result(
            scenario="overload",
            users=o.users,
            messages=o.messages,
            throughput_msgs_per_s=int(got.get("unique", 0)) / max(t_end - t0, 1e-6),
            latency_ms=latency_summary(got["latencies_ms"]),
            # Lost: handed to emit(), never received by a client (a failed PUBLISH is
            # logged by python-socketio, but emit() does not tell its caller).
            lost=emitter.published + emitter.failed - int(got.get("unique", 0)),
            duplicates=int(got.get("duplicates", 0)),
            connect_success_rate=connect["ok"] / max(1, o.users),
            cpu_seconds=got["cpu_seconds"],
            rss_mb=got["rss_mb"],
            extra={
                "label": "peer",
                "emitted": emitter.published + emitter.failed,
                "publish_failed": emitter.failed,
                "published_to_no_subscriber": emitter.unheard,
                "window_s": window,
                "burst_seconds": round(burst_s, 2) if burst_s else None,
                "received_unique": got.get("unique", 0),
                "healthz_ms": latency_summary(health),
                "healthz_errors": len(herr),
                "pubsub_clients_dropped": info.get("client_output_buffer_limit_disconnections"),
            },
        )
    finally:
        await stack.close()
