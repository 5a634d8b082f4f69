"""A real webhook receiver for the tests: a FastAPI app under uvicorn on a loopback port,
served in the test's event loop. It records every request (headers and raw body) and
answers as its ``mode`` for that path says: ``ok`` (204), ``fail`` (503), ``hang``
(never answers in time), ``hang_once`` (the first request of each webhook-id hangs,
later ones are answered 204). :meth:`stop` and :meth:`start` again on the same port
make a receiver that is down for a while (connections refused)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request, Response

from tests.servers import listening, port_of, serve


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


class Receiver:
    def __init__(self, port: int | None = None) -> None:
        self._sock: socket.socket | None = listening(port or 0)  # ours until start()
        self.port = port_of(self._sock)
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests: list[Received] = []
        self.answered: list[Received] = []  # those answered 2xx
        self.mode: dict[str, str] = {}  # path -> mode (default ok)
        self.in_flight = 0
        self.peak: dict[str, int] = {}
        self._running: dict[str, int] = {}
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.app = self._app()

    def _app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/{path}")
        async def hook(path: str, request: Request) -> Response:
            got = Received(path, dict(request.headers), await request.body())
            self.requests.append(got)
            self._running[path] = self._running.get(path, 0) + 1
            self.peak[path] = max(self.peak.get(path, 0), self._running[path])
            try:
                return await self._answer(path, got, request)
            finally:
                self._running[path] -= 1

        return app

    async def _answer(self, path: str, got: Received, request: Request) -> Response:
        mode = self.mode.get(path, "ok")
        first = sum(1 for r in self.requests if r.webhook_id == got.webhook_id) == 1
        if mode == "hang" or (mode == "hang_once" and first):
            # held until the sender gives up and closes the connection (then no longer
            # counted as running), at most 60 s
            for _ in range(6000):
                if await request.is_disconnected():
                    break
                await asyncio.sleep(0.01)
            return Response(status_code=503)
        if mode == "fail":
            return Response(status_code=503)
        self.answered.append(got)
        return Response(status_code=204)

    def endpoint(self, path: str) -> str:
        return f"{self.url}/{path}"

    async def start(self) -> Receiver:
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
        sock, self._sock = self._sock or listening(self.port), None  # again after a stop
        self._task = await serve(self._server, sock)
        return self

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await asyncio.wait_for(self._task, 10)
            self._server = self._task = None

    def ids(self, path: str | None = None) -> set[str]:
        """webhook-ids answered 2xx (what a receiver deduping by id keeps)."""
        return {r.webhook_id for r in self.answered if path is None or r.path == path}

    def bodies(self, path: str) -> dict[str, Any]:
        import orjson

        return {r.webhook_id: orjson.loads(r.body) for r in self.answered if r.path == path}
