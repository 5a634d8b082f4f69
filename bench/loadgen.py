"""The load generator: many WebSocket clients in one process (``python -m
bench.loadgen CONFIG_JSON``).

Modes: ``courier`` (Courier's protocol), ``raw`` (the same frames from the bare
websockets server), ``socketio`` (Engine.IO 4 / Socket.IO 5 spoken directly over a
websockets connection, so all three use the same client code and cost) and ``idle``
(Courier connections that only send heartbeats). Every client acks what it receives
(ids batched per flush). Latency is receive time minus the ``ts`` the producer put in
the payload; duplicates are counted by the payload's sequence number ``i``.

It prints JSON lines on stdout (``connected``, ``progress``, ``done``), stops on a
``stop`` line on stdin and writes its result to the ``out`` file of its config.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sys
import time
from array import array
from typing import Any
from urllib.parse import quote

import jwt
import orjson
from websockets.asyncio.client import ClientConnection, connect

from .common import ACK_DELAY_MS
from .procs import raise_nofile, run

log = logging.getLogger(__name__)

ACK_CHUNK = 500


def emit(event: str, **fields: Any) -> None:
    sys.stdout.write(orjson.dumps({"event": event, **fields}).decode() + "\n")
    sys.stdout.flush()


def token(secret: str, user: str) -> str:
    now = int(time.time())
    return jwt.encode(
        {"sub": user, "role": "user", "iat": now, "exp": now + 86400}, secret, algorithm="HS256"
    )


class _Acks:
    """What one connection owes the server, sent by one task: the ids of the messages
    it got (in chunks of ``ACK_CHUNK``) and, on socket.io, the pong of a ping."""

    def __init__(self, ws: ClientConnection, sio: bool, delay: float) -> None:
        self.ws, self.sio, self.delay = ws, sio, delay
        self.pending: list[Any] = []
        self.owes_pong = False
        self.wake = asyncio.Event()

    def add(self, mid: Any) -> None:
        self.pending.append(mid)
        self.wake.set()

    def pong(self) -> None:
        self.owes_pong = True
        self.wake.set()

    async def run(self) -> None:
        while True:
            await self.wake.wait()
            if self.delay:
                await asyncio.sleep(self.delay)
            self.wake.clear()
            if self.owes_pong:
                self.owes_pong = False
                await self.ws.send("3")
            while self.pending:
                ids = self.pending[:ACK_CHUNK]
                del self.pending[:ACK_CHUNK]
                if self.sio:
                    await self.ws.send("42" + orjson.dumps(["ack", {"ids": ids}]).decode())
                else:
                    await self.ws.send(orjson.dumps({"type": "ack", "ids": ids}).decode())


class Loadgen:
    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg
        self.mode: str = cfg["mode"]
        self.users: list[str] = cfg["users"]
        self.ack_delay = float(cfg.get("ack_delay_ms", ACK_DELAY_MS)) / 1000
        self.heartbeat = float(cfg.get("heartbeat_seconds", 0) or 0)
        self.local_addrs: list[str] = cfg.get("local_addrs") or []
        self.seen = bytearray(int(cfg.get("expect_max", 0)) + 1)
        self.extra: set[int] = set()  # sequence numbers beyond expect_max (should not happen)
        self.latencies = array("d")
        self.received = 0
        self.unique = 0
        self.duplicates = 0
        self.errors: dict[str, int] = {}
        self.connected = 0
        self.failed = 0
        self.reconnects = 0
        self.closes: dict[str, int] = {}
        self.pongs = 0
        self.first_rx = 0.0
        self.last_rx = 0.0
        self.stopping = False
        self.connect_seconds = 0.0
        self.first_connect = 0.0

    # -- bookkeeping ----------------------------------------------------------------------
    def record(self, seq: int, ts: float) -> None:
        now = time.time()
        self.received += 1
        self.last_rx = now
        if not self.first_rx:
            self.first_rx = now
        if 0 <= seq < len(self.seen):
            if self.seen[seq]:
                self.duplicates += 1
                return
            self.seen[seq] = 1
        elif seq in self.extra:
            self.duplicates += 1
            return
        else:
            self.extra.add(seq)
        self.unique += 1
        self.latencies.append((now - ts) * 1000.0)

    def count(self, table: dict[str, int], key: str) -> None:
        table[key] = table.get(key, 0) + 1

    # -- clients --------------------------------------------------------------------------
    def url(self, user: str) -> str:
        base = self.cfg["url"]
        tok = quote(token(self.cfg["secret"], user))
        if self.mode == "socketio":
            return f"{base}/socket.io/?EIO=4&transport=websocket"
        if self.mode == "raw":
            return f"{base}/?token={tok}"
        return f"{base}/v1/ws?token={tok}"

    async def client(
        self, i: int, user: str, gate: asyncio.Semaphore, first: asyncio.Future[bool]
    ) -> None:
        kw: dict[str, Any] = {}
        if self.local_addrs:
            kw["local_addr"] = (self.local_addrs[i % len(self.local_addrs)], 0)
        attempts = 0
        while not self.stopping:
            attempts += 1
            try:
                async with gate:
                    ws = await connect(
                        self.url(user),
                        compression=None,
                        ping_interval=None,
                        open_timeout=60,
                        close_timeout=2,
                        max_size=1 << 22,
                        max_queue=None,
                        **kw,
                    )
                    await self.hello(ws, user)
            except Exception as e:
                self.count(self.errors, f"connect: {type(e).__name__}")
                if not first.done():
                    first.set_result(False)
                if self.mode == "idle" or attempts >= 5:
                    return
                await asyncio.sleep(0.5)
                continue
            if not self.first_connect:
                self.first_connect = time.time()
            if not first.done():
                first.set_result(True)
            else:
                self.reconnects += 1
            code = await self.serve(ws)
            self.count(self.closes, str(code))
            if self.mode == "idle":
                return
            await asyncio.sleep(0.1)

    async def hello(self, ws: ClientConnection, user: str) -> None:
        if self.mode == "socketio":
            opened = await asyncio.wait_for(ws.recv(), 30)
            if not str(opened).startswith("0"):
                raise ConnectionError(f"engine.io open expected, got {opened!r}")
            await ws.send("40" + orjson.dumps({"token": token(self.cfg["secret"], user)}).decode())
            ok = await asyncio.wait_for(ws.recv(), 30)
            if not str(ok).startswith("40"):
                raise ConnectionError(f"socket.io connect refused: {ok!r}")
        else:
            hi = orjson.loads(await asyncio.wait_for(ws.recv(), 30))
            if hi.get("type") not in ("connected", "hello"):
                raise ConnectionError(f"unexpected first frame {hi!r}")

    async def serve(self, ws: ClientConnection) -> int | None:
        sio = self.mode == "socketio"
        acks = _Acks(ws, sio, self.ack_delay)
        helpers = [asyncio.create_task(acks.run())]
        if self.heartbeat:
            helpers.append(asyncio.create_task(self.beat(ws)))
        self.connected += 1
        try:
            async for raw in ws:
                if sio:
                    self.heard_sio(str(raw), acks)
                else:
                    self.heard(raw, acks)
        except Exception as e:
            self.count(self.errors, f"recv: {type(e).__name__}")
        finally:
            self.connected -= 1
            for t in helpers:
                t.cancel()
        return ws.close_code

    async def beat(self, ws: ClientConnection) -> None:
        await asyncio.sleep(random.uniform(0, self.heartbeat))
        while True:
            ping = {"type": "ping", "ts": int(time.time() * 1000)}
            await ws.send(orjson.dumps(ping).decode())
            await asyncio.sleep(self.heartbeat)

    def heard_sio(self, raw: str, acks: _Acks) -> None:
        if raw == "2":  # engine.io ping
            acks.pong()
        elif raw[:2] == "42":
            name, data = orjson.loads(raw[2:])
            if name == "message":
                self.record(data["i"], data["ts"])
                acks.add(data["i"])

    def heard(self, raw: str | bytes, acks: _Acks) -> None:
        f = orjson.loads(raw)
        kind = f.get("type")
        if kind == "message":
            p = f["payload"]
            self.record(p["i"], p["ts"])
            acks.add(f["id"])
        elif kind == "pong":
            self.pongs += 1
        elif kind == "error":
            self.count(self.errors, f"frame: {f.get('code')}")

    # -- run ------------------------------------------------------------------------------
    async def run(self) -> None:
        gate = asyncio.Semaphore(int(self.cfg.get("connect_concurrency", 100)))
        loop = asyncio.get_running_loop()
        firsts: list[asyncio.Future[bool]] = [loop.create_future() for _ in self.users]
        t0 = time.monotonic()
        tasks = [
            asyncio.create_task(self.client(i, u, gate, f))
            for i, (u, f) in enumerate(zip(self.users, firsts, strict=True))
        ]
        progress = asyncio.create_task(self.report_progress(firsts, t0))
        await asyncio.gather(*firsts)
        self.connect_seconds = time.monotonic() - t0
        ok = sum(1 for f in firsts if f.result())
        self.failed = len(firsts) - ok
        emit(
            "connected",
            ok=ok,
            failed=self.failed,
            seconds=round(self.connect_seconds, 3),
            t=self.first_connect,
        )
        await loop.run_in_executor(None, _wait_for_stop)
        self.stopping = True
        progress.cancel()
        self.write_result(ok)
        emit("done")
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def report_progress(self, firsts: list[asyncio.Future[bool]], t0: float) -> None:
        while True:
            await asyncio.sleep(0.5)
            done = sum(1 for f in firsts if f.done())
            emit(
                "progress",
                attempted=done,
                connected=self.connected,
                received=self.received,
                unique=self.unique,
                duplicates=self.duplicates,
                pongs=self.pongs,
                elapsed=round(time.monotonic() - t0, 2),
            )

    def write_result(self, ok: int) -> None:
        out = {
            "mode": self.mode,
            "users": len(self.users),
            "connect_ok": ok,
            "connect_failed": self.failed,
            "connect_seconds": self.connect_seconds,
            "connected_at_end": self.connected,
            "received": self.received,
            "unique": self.unique,
            "duplicates": self.duplicates,
            "errors": self.errors,
            "closes": self.closes,
            "reconnects": self.reconnects,
            "pongs": self.pongs,
            "first_rx": self.first_rx,
            "first_connect": self.first_connect,
            "last_rx": self.last_rx,
            "latencies_ms": self.latencies.tolist(),
        }
        with open(self.cfg["out"], "wb") as fh:
            fh.write(orjson.dumps(out))


def _wait_for_stop() -> None:
    for line in sys.stdin:
        if line.strip() == "stop":
            return


def main() -> None:
    raise_nofile()
    cfg = orjson.loads(sys.argv[1])
    logging.basicConfig(level=logging.WARNING)
    run(Loadgen(cfg).run())


if __name__ == "__main__":
    main()
