"""The peer a Python team would pick instead: python-socketio's AsyncServer on aiohttp
with its Redis manager (``python -m bench.peer CONFIG_JSON``), in its documented
default set-up. A producer elsewhere emits through a write-only
``AsyncRedisManager`` to a room per user; delivery is best effort (Redis pub/sub).

The server checks the client's JWT on connect, puts the socket in its user's room and
counts the ids of the ``ack`` events it receives (``GET /stats``).
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import jwt
import orjson
import socketio
from aiohttp import web

from .common import payload, user_of
from .loadgen import emit
from .procs import raise_nofile, run

CHANNEL = "courier-bench-peer"


def build(cfg: dict[str, Any]) -> tuple[web.Application, dict[str, int]]:
    mgr = socketio.AsyncRedisManager(cfg["redis_url"], channel=cfg.get("channel", CHANNEL))
    sio = socketio.AsyncServer(async_mode="aiohttp", client_manager=mgr)
    app = web.Application()
    sio.attach(app)
    counts = {"acked": 0, "connected": 0}

    async def connect(sid: str, environ: dict[str, Any], auth: dict[str, Any] | None) -> bool:
        try:
            claims = jwt.decode(
                (auth or {}).get("token", ""),
                cfg["secret"],
                algorithms=["HS256"],
                options={"require": ["exp", "sub"]},
            )
        except jwt.InvalidTokenError:
            return False
        await sio.enter_room(sid, claims["sub"])
        counts["connected"] += 1
        return True

    async def disconnect(sid: str, *args: Any) -> None:
        counts["connected"] -= 1

    async def ack(sid: str, data: dict[str, Any]) -> None:
        counts["acked"] += len(data.get("ids") or ())

    # registered by calls: socketio's decorators are untyped (they would untype these)
    sio.on("connect", connect)
    sio.on("disconnect", disconnect)
    sio.on("ack", ack)

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(counts)

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/stats", stats)
    return app, counts


class Emitter:
    """The producer side: a write-only manager, ``concurrency`` emits in flight."""

    def __init__(self, redis_url: str, channel: str = CHANNEL, concurrency: int = 64) -> None:
        self.mgr = socketio.AsyncRedisManager(redis_url, channel=channel, write_only=True)
        self.concurrency = concurrency
        # emit() never tells its caller whether the PUBLISH worked; count it here (the
        # manager's _publish answers the number of subscribers, or None when it gave up).
        self.published = self.failed = self.unheard = 0
        publish = self.mgr._publish

        async def counted(data: Any) -> Any:
            n = await publish(data)
            if n is None:
                self.failed += 1
            else:
                self.published += 1
                self.unheard += int(n) == 0
            return n

        self.mgr._publish = counted

    async def emit_many(self, items: list[tuple[str, dict[str, Any]]]) -> None:
        for k in range(0, len(items), self.concurrency):
            await asyncio.gather(
                *(
                    self.mgr.emit("message", data, room=user, namespace="/")
                    for user, data in items[k : k + self.concurrency]
                )
            )

    async def emit_range(self, first: int, n: int, users: int) -> None:
        """Messages first .. first+n-1, each to its user, as every scenario sends them."""
        await self.emit_many([(user_of(i, users), payload(i)) for i in range(first, first + n)])

    async def aclose(self) -> None:
        redis = getattr(self.mgr, "redis", None)
        if redis is not None:
            await redis.aclose()


async def serve(cfg: dict[str, Any]) -> None:
    app, counts = build(cfg)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", int(cfg["port"]), backlog=4096).start()
    emit("listening")
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)
    emit("done", **counts)
    await runner.cleanup()


def main() -> None:
    raise_nofile()
    run(serve(orjson.loads(sys.argv[1])))


if __name__ == "__main__":
    main()
