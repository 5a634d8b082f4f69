"""The FastAPI application: HTTP API, WebSocket edge, health, metrics; in
``courier serve`` it also runs the consumers and the scheduler in-process."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.types import Receive, Scope, Send

from delivery.events import EventLog
from delivery.settings import Settings

from . import (
    docs,
    errors,
    examples,
    metrics_collector,
    routes_admin,
    routes_admin_ops,
    routes_messages,
    routes_tasks,
    routes_webhooks,
    tail,
    ws,
)
from .auth import Verifier
from .body_limit import BodyLimit
from .hub import Hub
from .json_bodies import JsonBodies
from .node import Node
from .responses import OrjsonResponse
from .runtime import Runtime

log = logging.getLogger(__name__)

# What lives outside the product and adds to the app (today the operators' console,
# the top-level console/ package, at /admin) plugs in through this entry-point group
# of pyproject.toml: each is called with the app, and nothing here imports it.
WEB_PLUGINS = "courier.web"


def body_limit(settings: Settings) -> int:
    """The largest request body: a batch of messages at the payload limit, with room."""
    return max(settings.max_payload_bytes * 2, 1 << 20) * 16


class CourierApp(FastAPI):
    """FastAPI whose WebSocket edge skips the middleware stack (it is for HTTP: the
    body limit and the error handlers): see :func:`api.ws.serve`."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            scope["app"] = self
            if await ws.serve(scope, receive, send):
                return
        await super().__call__(scope, receive, send)


def install_plugins(app: FastAPI) -> list[str]:
    """Let each installed :data:`WEB_PLUGINS` entry point add to the app; their names."""
    from importlib.metadata import entry_points

    names = []
    for ep in entry_points(group=WEB_PLUGINS):
        try:
            ep.load()(app)
        except ImportError as e:
            log.warning("web plugin %s not available: %s", ep.name, e)
            continue
        names.append(ep.name)
    return names


def create_app(settings: Settings | None = None, *, consumers: bool = True) -> FastAPI:
    settings = settings or Settings()
    verifier = Verifier(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        hub = Hub(max_connections=settings.max_connections)
        rt = Runtime.build(settings, with_consumers=consumers, local=hub.local_sink)
        if settings.events:  # the live tail's source (api/tail.py)
            rt.extras[tail.EVENTS] = tail.StreamEvents(EventLog(rt.redis, keyspace=rt.keyspace))
        node = Node(rt, hub, verifier)
        app.state.runtime = rt
        app.state.hub = hub
        app.state.node = node
        await node.start()
        if rt.consumers is not None:
            await rt.consumers.start()
        log.info("courier node %s ready", rt.node_id)
        try:
            yield
        finally:
            await node.stop()
            await rt.close()
            log.info("courier node %s stopped", rt.node_id)

    app = CourierApp(
        title="Courier",
        version="0.1.0",
        summary="Guaranteed message delivery to users over WebSocket, on Redis Streams.",
        lifespan=lifespan,
        default_response_class=OrjsonResponse,
        docs_url=None,  # served offline by api/docs.py
        redoc_url=None,
        openapi_url="/openapi.json" if settings.api_docs else None,
    )
    app.openapi = lambda: docs.openapi(app)  # type: ignore[method-assign]
    docs.install(app)
    app.state.settings = settings
    app.state.verifier = verifier
    errors.install(app)
    app.add_middleware(JsonBodies)
    app.add_middleware(BodyLimit, max_bytes=body_limit(settings))
    app.include_router(routes_messages.router)
    app.include_router(routes_admin.router)
    app.include_router(routes_admin_ops.router)
    app.include_router(tail.router)
    app.include_router(routes_tasks.router)
    app.include_router(routes_webhooks.router)
    app.include_router(ws.router)
    install_plugins(app)
    examples.install(app, settings)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["ops"],
        responses={
            **docs.ok(
                200, "Ready.", {"status": "ok", "checks": {"redis": "ok", "consumers": "ok"}}
            ),
            **docs.ok(
                503,
                "Not ready: the failing check says why (this route's own shape).",
                {
                    "status": "unavailable",
                    "checks": {"redis": "unreachable: ...", "consumers": "ok"},
                },
            ),
        },
    )
    async def readyz(request: Request) -> Any:
        """Redis answers and the consumers run."""
        rt: Runtime = request.app.state.runtime
        checks: dict[str, str] = {}
        try:
            await rt.redis.ping()
            checks["redis"] = "ok"
        except Exception as e:
            checks["redis"] = f"unreachable: {e}"
        if rt.consumers is not None:
            checks["consumers"] = "ok" if rt.consumers.alive else "stopped"
        ok = all(v == "ok" for v in checks.values())
        return OrjsonResponse(
            {"status": "ok" if ok else "unavailable", "checks": checks},
            status_code=200 if ok else 503,
        )

    metrics_collector.install()

    @app.get(
        "/metrics",
        tags=["ops"],
        responses={200: {"description": "Prometheus text format.", "content": {"text/plain": {}}}},
    )
    async def metrics(request: Request) -> Response:
        """Prometheus text: this process's counters plus the deployment's Redis gauges."""
        body = await metrics_collector.render(request.app.state.runtime)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return app
