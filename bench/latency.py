#!/usr/bin/env python3
"""Edge latency: enqueue to client receive, with many connected users at a paced rate.

    .venv/bin/python -m bench.latency --users 1000 --rate 1000 --duration 10

It starts a private redis-server (api.redis_server.RedisServer, AOF on, in a temporary
folder) and one ``courier serve`` subprocess on a free port, connects ``--users``
WebSocket clients (one user each) in this process, then enqueues messages to random
users with delivery.producer.Producer at ``--rate`` per second for ``--duration``
seconds. Each payload carries the wall time just before its enqueue call; a client's
latency sample is its receive wall time minus that (same machine, same clock). Clients
ack every message. Messages sent during ``--warmup`` seconds are not counted.

It prints a table and, last, one JSON line. Exit code 1 when messages were lost.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from api.auth import issue
from api.redis_server import RedisServer, free_port
from delivery.keys import Keyspace
from delivery.percentiles import percentile
from delivery.producer import Limits, Producer
from delivery.settings import Settings

from .procs import run, wait_http

SECRET = secrets.token_urlsafe(32)
COURIER = str(Path(sys.executable).with_name("courier"))


def log(text: str) -> None:
    print(f"latency: {text}", file=sys.stderr, flush=True)


class Stats:
    def __init__(self, warmup_until: float) -> None:
        self.warmup_until = warmup_until
        self.samples: list[float] = []  # ms
        self.received: set[str] = set()
        self.duplicates = 0
        self.sent: dict[str, float] = {}  # counted message id -> send wall time
        self.arrived = asyncio.Event()

    def got(self, frame: dict[str, Any], now: float) -> None:
        mid = frame["id"]
        if mid in self.received:
            self.duplicates += 1
            return
        self.received.add(mid)
        self.arrived.set()
        sent_at = frame["payload"]["t"]
        if sent_at >= self.warmup_until:
            self.samples.append((now - sent_at) * 1000)


async def client(
    url: str,
    token: str,
    stats: Stats,
    gate: asyncio.Semaphore,
    connected: list[int],
    compression: bool,
) -> None:
    async with gate:  # a bounded number of handshakes at a time
        ws = await connect(
            f"{url}?token={token}",
            open_timeout=30,
            max_size=None,
            ping_interval=None,
            compression="deflate" if compression else None,
            proxy=None,
        )
        hello = orjson.loads(await ws.recv())
        assert hello["type"] == "connected", hello
    connected[0] += 1
    try:
        await reader(ws, stats)
    finally:
        await ws.close()


async def reader(ws: ClientConnection, stats: Stats) -> None:
    with contextlib.suppress(ConnectionClosed):
        async for raw in ws:
            now = time.time()
            frame = orjson.loads(raw)
            if frame["type"] == "message":
                stats.got(frame, now)
                await ws.send(b'{"type":"ack","id":"%s"}' % frame["id"].encode(), text=True)


async def produce(
    producer: Producer,
    users: list[str],
    rate: float,
    duration: float,
    payload_bytes: int,
    stats: Stats,
) -> tuple[int, float]:
    """Enqueue at `rate`/s in small paced batches; returns (messages, seconds taken)."""
    tick = 0.01
    per_tick = rate * tick
    filler = "x" * max(payload_bytes - 40, 0)
    start = time.monotonic()
    sent, owed, i = 0, 0.0, 0
    while True:
        elapsed = time.monotonic() - start
        if elapsed >= duration:
            break
        owed += per_tick
        n = int(owed)
        owed -= n
        if n:
            t = time.time()
            batch = [
                {"user_id": random.choice(users), "payload": {"t": t, "f": filler}}
                for _ in range(n)
            ]
            accepted = await producer.submit_many(batch)
            for a in accepted:
                if t >= stats.warmup_until:
                    stats.sent[a[0].id] = t
            sent += n
        i += 1
        delay = start + i * tick - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
    return sent, time.monotonic() - start


class Cpu:
    """CPU seconds (user + system) used by some processes since this object was made."""

    def __init__(self, pids: dict[str, int]) -> None:
        import psutil

        self.procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.start = {name: self._now(p) for name, p in self.procs.items()}

    @staticmethod
    def _now(p: Any) -> float:
        t = p.cpu_times()
        return float(t.user + t.system)

    def used(self) -> dict[str, float]:
        return {name: self._now(p) - self.start[name] for name, p in self.procs.items()}


def _ms_at(ordered: list[float], q: float) -> float | None:
    """The percentile in ms, rounded for the report (None when there are no samples)."""
    v = percentile(ordered, q)
    return None if v is None else round(v, 2)


# `courier serve` with another uvicorn WebSocket implementation, for comparisons.
SERVE_WITH_WS = """
import sys
from api.app import create_app
from api.server import Server, config
from delivery.settings import Settings
s = Settings()
Server(config(create_app(s), s, ws=sys.argv[1])).run()
"""


def serve(env: dict[str, str], log_path: Path, ws: str | None) -> subprocess.Popen[bytes]:
    cmd = [COURIER, "serve"] if ws is None else [sys.executable, "-c", SERVE_WITH_WS, ws]
    with log_path.open("wb") as out:
        return subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=log_path.parent
        )


async def measure(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    redis_url = args.redis_url
    redis = None
    if redis_url is None:
        redis = RedisServer(workdir / "redis").start()
        redis_url = redis.url
    port = free_port()
    prefix = f"lat{secrets.token_hex(3)}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("COURIER_")},
        "COURIER_REDIS_URL": redis_url,
        "COURIER_KEY_PREFIX": prefix,
        "COURIER_PARTITIONS": str(args.partitions),
        "COURIER_JWT_SECRET": SECRET,
        "COURIER_PORT": str(port),
        "COURIER_DATA_DIR": str(workdir / "courier"),
        "COURIER_HEARTBEAT_TIMEOUT_SECONDS": "600",
        "COURIER_LOG_LEVEL": "WARNING",
    }
    proc = serve(env, workdir / "serve.log", args.ws)
    tasks: list[asyncio.Task[None]] = []
    producer_client = None
    try:
        await wait_http(port, "/readyz", alive=lambda: proc.poll() is None)
        settings = Settings(jwt_secret=SECRET)
        users = [f"user{i}" for i in range(args.users)]
        stats = Stats(warmup_until=float("inf"))
        connected = [0]
        ws_url = f"ws://127.0.0.1:{port}/v1/ws"
        t0 = time.monotonic()
        gate = asyncio.Semaphore(100)
        tasks = [
            asyncio.create_task(
                client(
                    ws_url, issue(settings, u, ttl=3600), stats, gate, connected, args.compression
                )
            )
            for u in users
        ]
        while connected[0] < len(users):
            failed = [t for t in tasks if t.done()]
            if failed:
                raise RuntimeError(f"a client failed: {failed[0].exception()!r}")
            await asyncio.sleep(0.1)
        log(f"{len(users)} clients connected in {time.monotonic() - t0:.1f} s")

        import redis.asyncio as aioredis

        producer_client = aioredis.Redis.from_url(redis_url)
        producer = Producer(
            producer_client, keyspace=Keyspace(prefix, args.partitions), limits=Limits()
        )
        stats.warmup_until = time.time() + args.warmup
        log(
            f"enqueueing {args.rate}/s for {args.warmup + args.duration} s "
            f"({args.warmup} s warm-up)"
        )
        cpu = Cpu({"server": proc.pid, "clients": os.getpid()})
        load_before = round(os.getloadavg()[0], 2)  # other work on the machine shows here
        n, took = await produce(
            producer, users, args.rate, args.warmup + args.duration, args.payload_bytes, stats
        )
        cpu_s = cpu.used()
        deadline = time.monotonic() + args.drain
        counted = set(stats.sent)
        while not counted <= stats.received and time.monotonic() < deadline:
            stats.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stats.arrived.wait(), 0.5)
        lost = len(counted - stats.received)
        samples = sorted(stats.samples)
        return {
            "benchmark": "edge_latency",
            "users": args.users,
            "rate_target": args.rate,
            "rate_achieved": round(n / took, 1),
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "payload_bytes": args.payload_bytes,
            "partitions": args.partitions,
            "messages": len(counted),
            "received": len(counted & stats.received),
            "lost": lost,
            "duplicates": stats.duplicates,
            "p50_ms": _ms_at(samples, 50),
            "p95_ms": _ms_at(samples, 95),
            "p99_ms": _ms_at(samples, 99),
            "max_ms": round(samples[-1], 2) if samples else None,
            "mean_ms": round(sum(samples) / len(samples), 2) if samples else None,
            "cpu_s_per_1k_msgs": {k: round(v / n * 1000, 3) for k, v in cpu_s.items()},
            "loadavg_1m": [load_before, round(os.getloadavg()[0], 2)],
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "compression": args.compression,
            "server": "courier serve" if args.ws is None else f"uvicorn ws={args.ws}",
        }
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if producer_client is not None:
            await producer_client.aclose()
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        if redis is not None:
            redis.stop()


def table(res: dict[str, Any]) -> str:
    rows = [
        ("users connected", res["users"]),
        ("rate (target / achieved)", f"{res['rate_target']} / {res['rate_achieved']} msg/s"),
        ("measured messages", f"{res['messages']} over {res['duration_s']} s"),
        (
            "received / lost / duplicates",
            f"{res['received']} / {res['lost']} / {res['duplicates']}",
        ),
        ("p50", f"{res['p50_ms']} ms"),
        ("p95", f"{res['p95_ms']} ms"),
        ("p99", f"{res['p99_ms']} ms"),
        ("max", f"{res['max_ms']} ms"),
        ("load average (1 min) before / after", " / ".join(map(str, res["loadavg_1m"]))),
        (
            "CPU s per 1000 messages",
            ", ".join(f"{k} {v}" for k, v in res["cpu_s_per_1k_msgs"].items()),
        ),
    ]
    w = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(w)}  {v}" for k, v in rows)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=int, default=1000)
    p.add_argument("--rate", type=float, default=1000, help="messages per second")
    p.add_argument("--duration", type=float, default=10, help="measured seconds")
    p.add_argument("--warmup", type=float, default=2, help="seconds sent but not counted")
    p.add_argument("--drain", type=float, default=15, help="seconds to wait for stragglers")
    p.add_argument("--payload-bytes", type=int, default=100)
    p.add_argument("--partitions", type=int, default=8)
    p.add_argument(
        "--redis-url", default=None, help="use this Redis instead of a private redis-server"
    )
    p.add_argument(
        "--compression",
        action="store_true",
        help="clients offer permessage-deflate (browsers do; off by default: small frames)",
    )
    p.add_argument(
        "--ws",
        default=None,
        choices=["websockets", "websockets-sansio", "wsproto"],
        help="run the edge with this uvicorn WebSocket implementation instead of "
        "`courier serve` (for comparisons)",
    )
    return p.parse_args(argv)


def main() -> int:
    args = parse()
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < args.users + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, args.users + 1000), hard))
    with tempfile.TemporaryDirectory(prefix="courier-latency-") as d:
        res = run(measure(args, Path(d)))
    print(table(res))
    print(json.dumps(res))
    return 1 if res["lost"] else 0


if __name__ == "__main__":
    sys.exit(main())
