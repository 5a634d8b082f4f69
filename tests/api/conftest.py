"""Real edge servers for the API tests: uvicorn on a socket bound first (tests/servers.py:
no other process can take its port before it serves), served in the test's event loop,
with real WebSocket clients (the ``websockets`` library) and an HTTP client.

``edge(**overrides)`` starts one node (a :class:`Node`) whose settings are the test's
keyspace plus the overrides; every node is stopped at the end of the test, before the
test's keys are deleted. A node's ``hub`` (its connections), ``node`` (its
:class:`api.node.Node`: background loops) and ``rt`` (its Runtime) are the server's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aioredis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from api.app import create_app
from api.auth import issue
from api.hub import Hub
from api.node import Node as EdgeNode
from api.runtime import Runtime
from api.server import Server, config
from delivery.keys import Keyspace
from delivery.settings import Settings
from tests.processes import SECRET, Proc, ServeProc, serve_env
from tests.servers import listening, port_of, serve

FAST = {
    "scheduler_interval_seconds": 0.05,
    "retry_base_seconds": 0.05,
    "retry_max_seconds": 0.2,
}


class Client:
    """One WebSocket client: JSON frames in and out, with bounded waits."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:  # noqa: ASYNC109
        return orjson.loads(await asyncio.wait_for(self.ws.recv(), timeout))  # type: ignore[no-any-return]

    async def recv_type(self, kind: str, timeout: float = 5.0) -> dict[str, Any]:  # noqa: ASYNC109
        """The next frame of this type (frames of other types are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            frame = await self.recv(max(deadline - time.monotonic(), 0.001))
            if frame["type"] == kind:
                return frame

    async def messages(self, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        return [
            await self.recv_type("message", max(deadline - time.monotonic(), 0.001))
            for _ in range(n)
        ]

    async def silent(self, within: float = 0.3) -> None:
        """Assert that no frame arrives for `within` seconds."""
        try:
            frame = await asyncio.wait_for(self.ws.recv(), within)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected frame {frame!r}")

    async def send(self, frame: dict[str, Any] | str) -> None:
        await self.ws.send(frame if isinstance(frame, str) else orjson.dumps(frame).decode())

    async def ack(self, *ids: str) -> None:
        await self.send(
            {"type": "ack", "id": ids[0]} if len(ids) == 1 else {"type": "ack", "ids": list(ids)}
        )

    async def closed(self, timeout: float = 5.0) -> int | None:  # noqa: ASYNC109
        """Read until the server closes; the close code it sent (None: no close frame)."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                await asyncio.wait_for(self.ws.recv(), max(deadline - time.monotonic(), 0.001))
        except ConnectionClosed as e:
            return e.rcvd.code if e.rcvd is not None else None

    @property
    def subprotocol(self) -> str | None:
        return self.ws.subprotocol

    async def close(self) -> None:
        await self.ws.close()


class Node:
    """One running edge: its settings, uvicorn server, URLs and helpers."""

    def __init__(self, settings: Settings, server: Server, task: asyncio.Task[None]) -> None:
        self.settings = settings
        self.server = server
        self.task = task
        self.port = settings.port
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/v1/ws"
        self.http = httpx.AsyncClient(base_url=self.url, timeout=10)
        self.clients: list[Client] = []

    @property
    def hub(self) -> Hub:
        return self.server.config.app.state.hub  # type: ignore[no-any-return]

    @property
    def node(self) -> EdgeNode:
        return self.server.config.app.state.node  # type: ignore[no-any-return]

    @property
    def rt(self) -> Runtime:
        return self.server.config.app.state.runtime  # type: ignore[no-any-return]

    def token(self, user: str, *, role: str = "user", ttl: int = 3600) -> str:
        return issue(self.settings, user, role=role, ttl=ttl)

    async def connect(
        self,
        user: str | None = None,
        *,
        path: str = "",
        query: str = "",
        token: str | None = None,
        **kw: Any,
    ) -> Client:
        """A client of `user` (token in the query unless one is given another way)."""
        params = []
        if user is not None and token is None:
            token = self.token(user)
        if token is not None and "subprotocols" not in kw and "additional_headers" not in kw:
            params.append(f"token={token}")
        if query:
            params.append(query)
        url = self.ws_url + path + ("?" + "&".join(params) if params else "")
        kw.setdefault("open_timeout", 5)
        kw.setdefault("max_size", 4 * 1024 * 1024)
        client = Client(await connect(url, **kw))
        self.clients.append(client)
        return client

    async def online(self, user: str, **kw: Any) -> tuple[Client, dict[str, Any]]:
        """A connected client and its `connected` frame."""
        c = await self.connect(user, **kw)
        return c, await c.recv_type("connected")

    async def send(self, user: str, payload: Any, **fields: Any) -> str:
        """Enqueue one message through the HTTP API (service token); its id."""
        r = await self.http.post(
            "/v1/messages",
            json={"user_id": user, "payload": payload, **fields},
            headers={"Authorization": f"Bearer {self.token('backend', role='service')}"},
        )
        assert r.status_code == 202, r.text
        return r.json()["id"]  # type: ignore[no-any-return]

    async def message(self, mid: str) -> dict[str, Any]:
        """A message's status and timeline (admin API)."""
        r = await self.http.get(
            f"/v1/messages/{mid}",
            headers={"Authorization": f"Bearer {self.token('ops', role='admin')}"},
        )
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    async def wait_status(self, mid: str, status: str, within: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while True:
            m = await self.message(mid)
            if m["status"] == status:
                return m
            if time.monotonic() > deadline:
                raise AssertionError(f"{mid} is {m['status']}, not {status}: {m['timeline']}")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        """Stop like SIGTERM does (uvicorn's should_exit): graceful shutdown."""
        self.server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self.task), 20)
        finally:
            await self.http.aclose()


async def start_node(
    settings: Settings, uvicorn: dict[str, Any] | None = None, sock: socket.socket | None = None
) -> Node:
    """Serve an edge of `settings` on `sock` (bound to ``settings.port``; None: uvicorn
    binds the port itself, as ``courier serve`` does). A start-up failure raises
    ``tests.servers.StartupFailed``."""
    app = create_app(settings)
    server = Server(
        config(
            app,
            settings,
            host="127.0.0.1",
            port=settings.port,
            timeout_graceful_shutdown=5,
            **(uvicorn or {}),
        ),
        settings,
    )
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
    return Node(settings, server, await serve(server, sock))


EdgeFactory = Callable[..., Awaitable[Node]]


def node_settings(
    redis_url: str, keyspace: Keyspace, sock: socket.socket | None = None, **overrides: Any
) -> Settings:
    """The settings of a test node; its port is `sock`'s (give ``port=`` to choose one)."""
    values: dict[str, Any] = {
        "redis_url": redis_url,
        "key_prefix": keyspace.prefix,
        "partitions": keyspace.partitions,
        "jwt_secret": SECRET,
        "host": "127.0.0.1",
        "log_level": "WARNING",
        **FAST,
        **overrides,
    }
    if "port" not in values:
        values["port"] = port_of(sock) if sock is not None else 0
    return Settings(**values)


async def start_edge(
    redis_url: str, keyspace: Keyspace, uvicorn: dict[str, Any] | None = None, **overrides: Any
) -> Node:
    """One edge on a socket bound here (``port=`` given: uvicorn binds that port)."""
    sock = None if "port" in overrides else listening()
    try:
        settings = node_settings(redis_url, keyspace, sock, **overrides)
    except BaseException:
        if sock is not None:
            sock.close()
        raise
    return await start_node(settings, uvicorn, sock)


@pytest.fixture
async def edge(redis_url: str, keyspace: Keyspace, r: aioredis.Redis) -> AsyncIterator[EdgeFactory]:
    """Start edge nodes on this test's keyspace: ``node = await edge(ack_timeout_seconds=1)``
    (uvicorn options too: ``edge(uvicorn={"ws": "websockets-sansio"})``)."""
    nodes: list[Node] = []

    async def start(*, uvicorn: dict[str, Any] | None = None, **overrides: Any) -> Node:
        node = await start_edge(redis_url, keyspace, uvicorn, **overrides)
        nodes.append(node)
        return node

    yield start
    for node in nodes:
        for c in node.clients:
            await c.ws.close()
        if not node.task.done():
            await node.stop()


@pytest.fixture
async def proc(
    redis_url: str, keyspace: Keyspace, r: aioredis.Redis, tmp_path: Path
) -> AsyncIterator[ServeProc]:
    """Start `courier serve` processes on this test's keyspace (tests/processes.py):
    ``p = await proc("edge", COURIER_MAX_UNACKED="10")``; ready when it returns."""
    procs: list[Proc] = []

    async def start(name: str, *args: str, **env: str) -> Proc:
        p = Proc(name, serve_env(name, redis_url, keyspace, tmp_path, **env), tmp_path, *args)
        procs.append(p)
        await p.ready()
        return p

    yield start
    await asyncio.gather(*(p.stop() for p in procs))
