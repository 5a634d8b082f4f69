"""An edge frozen with SIGSTOP for longer than the heartbeat timeout, under load: its
messages stop going to it once its heartbeat is stale (they park, and reach the
devices when it wakes), and a message whose attempts were used up on the frozen
socket but that a device acked after SIGCONT ends delivered, out of the dead-letter
stream: no acked message ends dead."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from pathlib import Path

import orjson
import pytest
import redis.asyncio as aioredis
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from api.auth import issue
from delivery.keys import Keyspace
from delivery.producer import Limits, Producer
from delivery.settings import Settings
from tests.processes import SECRET, ServeProc

pytestmark = pytest.mark.slow

SETTINGS = {"COURIER_MAX_ATTEMPTS": "2", "COURIER_ACK_TIMEOUT_SECONDS": "1"}


async def _device(url: str, user: str, acked: set[str]) -> None:
    """Pings, acks everything it receives, reconnects when closed (4408 after a stall)."""
    token = issue(Settings(jwt_secret=SECRET), user)
    while True:
        with contextlib.suppress(ConnectionClosed, OSError, TimeoutError):
            async with connect(f"{url}?token={token}", open_timeout=5) as ws:
                last_ping = 0.0
                while True:
                    if time.monotonic() - last_ping > 0.3:
                        await ws.send('{"type":"ping"}')
                        last_ping = time.monotonic()
                    try:
                        frame = orjson.loads(await asyncio.wait_for(ws.recv(), 0.3))
                    except TimeoutError:
                        continue
                    if frame["type"] == "message":
                        await ws.send(orjson.dumps({"type": "ack", "id": frame["id"]}).decode())
                        acked.add(frame["id"])
        await asyncio.sleep(0.2)


async def test_no_acked_message_ends_dead_after_an_edge_stall(
    proc: ServeProc, r: aioredis.Redis, keyspace: Keyspace, tmp_path: Path
) -> None:
    a = await proc("a", **SETTINGS)
    b = await proc("b", **SETTINGS)
    users = [f"frozen{i}" for i in range(6)]
    acked: set[str] = set()
    devices = [asyncio.create_task(_device(b.ws_url, u, acked)) for u in users]
    producer = Producer(r, keyspace=keyspace, limits=Limits(max_attempts=2))
    ids: list[str] = []
    try:
        deadline = time.monotonic() + 10
        while len(await r.keys(f"{keyspace.prefix}:*:conns")) < len(users):
            assert time.monotonic() < deadline, "devices did not connect"
            await asyncio.sleep(0.05)

        async def load(seconds: float) -> None:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                batch = await producer.submit_many([{"user_id": u, "payload": 1} for u in users])
                ids.extend(x.id for (x,) in batch)
                await asyncio.sleep(0.05)

        await load(1.0)
        b.proc.send_signal(signal.SIGSTOP)
        await load(4.0)  # longer than the heartbeat timeout (1.5 s)
        b.proc.send_signal(signal.SIGCONT)
        await load(1.0)

        async def statuses() -> dict[str, str]:
            pipe = r.pipeline(transaction=False)
            for mid in ids:
                pipe.hget(keyspace.msg(mid), "s")
            got = await pipe.execute()
            return {m: (s or b"gone").decode() for m, s in zip(ids, got, strict=True)}

        deadline = time.monotonic() + 40
        while True:
            now = await statuses()
            if all(s in ("delivered", "dead") for s in now.values()):
                break
            assert time.monotonic() < deadline, {
                s: list(now.values()).count(s) for s in set(now.values())
            }
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.5)  # acks still on their way
        now = await statuses()
        dead_but_acked = [m for m in acked if now.get(m) == "dead"]
        assert not dead_but_acked, f"{len(dead_but_acked)} acked messages are dead"
        in_dlq = set()
        for p in range(keyspace.partitions):
            for _, f in await r.xrange(keyspace.key(p, "dlq")):
                in_dlq.add(f[b"id"].decode())
        assert not in_dlq & acked
        delivered = [m for m, s in now.items() if s == "delivered"]
        assert len(delivered) > len(ids) * 0.9, (len(delivered), len(ids))
    finally:
        for t in devices:
            t.cancel()
        await asyncio.gather(*devices, return_exceptions=True)
        _ = a
