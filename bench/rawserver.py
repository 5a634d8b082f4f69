"""The ceiling: a bare websockets server that pushes Courier-shaped ``message`` frames to
the same clients, with no Redis, no persistence and no retries
(``python -m bench.rawserver CONFIG_JSON``).

Like Courier's edge it checks each client's JWT, keeps a send queue and a writer task
per connection and reads ``ack`` frames. On a ``start`` line on stdin it generates the
messages itself (message ``i`` to user ``u{i % users}``), as fast as it can or at
``rate``, and reports ``started``, ``progress`` (acked ids) and ``produced``.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any
from urllib.parse import parse_qs, urlparse

import jwt
import orjson
from websockets.asyncio.server import ServerConnection, serve

from delivery.message import iso_ms

from .common import paced, payload, user_of
from .loadgen import emit
from .procs import raise_nofile, run


class RawServer:
    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg
        self.queues: dict[str, asyncio.Queue[str]] = {}
        self.acked = 0

    async def handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        query = parse_qs(urlparse(ws.request.path).query)
        try:
            claims = jwt.decode(
                query.get("token", [""])[0],
                self.cfg["secret"],
                algorithms=["HS256"],
                options={"require": ["exp", "sub"]},
            )
        except jwt.InvalidTokenError:
            await ws.close(4401, "bad token")
            return
        user = claims["sub"]
        queue: asyncio.Queue[str] = asyncio.Queue()
        self.queues[user] = queue
        await ws.send(orjson.dumps({"type": "connected", "user_id": user}).decode())
        writer = asyncio.create_task(self.writer(ws, queue))
        try:
            async for raw in ws:
                f = orjson.loads(raw)
                if f.get("type") == "ack":
                    self.acked += len(f.get("ids") or [f.get("id")])
        finally:
            writer.cancel()
            self.queues.pop(user, None)

    @staticmethod
    async def writer(ws: ServerConnection, queue: asyncio.Queue[str]) -> None:
        while True:
            await ws.send(await queue.get())

    async def produce(self) -> None:
        users, total = int(self.cfg["users"]), int(self.cfg["messages"])

        async def send(first: int, n: int) -> None:
            for i in range(first, first + n):
                user = user_of(i, users)
                frame = {
                    "type": "message",
                    "id": f"r-{i}",
                    "priority": "normal",
                    "payload": payload(i),
                    "created_at": iso_ms(int(time.time() * 1000)),
                    "attempt": 1,
                }
                q = self.queues.get(user)
                if q is not None:
                    q.put_nowait(orjson.dumps(frame).decode())
            await asyncio.sleep(0)

        emit("started", t=time.time())
        seconds = await paced(total, send, rate=self.cfg.get("rate"))
        emit("produced", seconds=seconds)

    async def main(self) -> None:
        loop = asyncio.get_running_loop()
        async with serve(
            self.handler,
            "127.0.0.1",
            int(self.cfg["port"]),
            compression=None,
            ping_interval=None,
            max_queue=None,
            max_size=1 << 20,
            backlog=4096,
        ):
            emit("listening")
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if line.strip() != "start":
                emit("done")
                return
            reporter = asyncio.create_task(self.report())
            await self.produce()
            await loop.run_in_executor(None, sys.stdin.readline)  # "stop"
            reporter.cancel()
            emit("done", acked=self.acked)

    async def report(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            emit("progress", acked=self.acked, connected=len(self.queues))


def main() -> None:
    raise_nofile()
    run(RawServer(orjson.loads(sys.argv[1])).main())


if __name__ == "__main__":
    main()
