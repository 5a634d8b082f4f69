"""uvicorn with Courier's graceful shutdown of WebSockets.

On shutdown uvicorn closes every open WebSocket with 1012 before the app's lifespan
shutdown runs, so the app never gets the chance to say goodbye. Courier promises
1001 and an immediate hand-back of unacknowledged messages: :class:`Server` stops
listening, asks the node to close its sockets (1001, hand-back included) and only then
lets uvicorn shut down the rest.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import resource
import socket
from collections.abc import Callable
from typing import Any

import uvicorn

from delivery.settings import Settings

from .http_limits import HttpLimits, protocol_class
from .protocol import CloseCode
from .wire import EdgeProtocol

log = logging.getLogger(__name__)

CLOSE_TIMEOUT = 5.0


def config(app: Any, settings: Settings, **overrides: Any) -> uvicorn.Config:
    """The uvicorn configuration Courier runs with (`courier serve`, tests, benchmarks)."""
    kwargs: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        # uvicorn's httptools protocol with bounds on request heads (api/http_limits.py)
        "http": protocol_class(HttpLimits.from_settings(settings)),
        "timeout_keep_alive": settings.keepalive_timeout_seconds,
        "ws": EdgeProtocol,  # uvicorn's websockets-sansio, plus batched writes
        "ws_max_size": settings.max_frame_bytes,
        "ws_per_message_deflate": settings.ws_compression,
        # Courier's own heartbeats (ping frames, 4408) find dead clients; a protocol
        # keepalive on top would cost a timer and a ping per connection for nothing.
        "ws_ping_interval": None,
        "lifespan": "on",
        "log_level": "warning",
        "log_config": None,
        "timeout_graceful_shutdown": 10,
    }
    kwargs.update(overrides)
    return uvicorn.Config(app, **kwargs)


GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc() -> None:
    """Keep Python's cyclic garbage collector off the hot path of a busy edge.

    With thousands of long-lived connection objects and many short-lived ones per
    message, the default thresholds (700, 10, 10) made collections a quarter of the
    server's CPU under load (py-spy, ``courier bench e2e``). What start-up built is
    frozen out of every collection, and young collections run 70 times less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def raise_open_files(max_connections: int) -> int:
    """Lift the soft open-file limit to the hard one (each WebSocket holds a file
    descriptor; many systems start processes at 1,024) and warn when even that is
    below ``MAX_CONNECTIONS``. Returns the limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    needed = max_connections + FILES_BESIDES_SOCKETS
    if soft != resource.RLIM_INFINITY and soft < needed:
        log.warning(
            "open-file limit %d is below MAX_CONNECTIONS (%d) plus %d; connections past "
            "it will be refused by the OS: raise it (ulimit -n, systemd LimitNOFILE, "
            "docker --ulimit nofile)",
            soft,
            max_connections,
            FILES_BESIDES_SOCKETS,
        )
    return int(soft)


FILES_BESIDES_SOCKETS = 256  # Redis connections, logs, the listening socket ...


class Server(uvicorn.Server):
    """A uvicorn server whose shutdown closes WebSockets the Courier way first."""

    def __init__(self, config: uvicorn.Config, settings: Settings | None = None) -> None:
        super().__init__(config)
        self.max_connections = (settings or Settings()).max_connections
        self.on_started: Callable[[], None] | None = None  # e.g. courier serve's banner

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        raise_open_files(self.max_connections)
        await super().startup(sockets)
        tune_gc()
        if self.started and self.on_started is not None:
            self.on_started()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:  # no new connections while the sockets close
            server.close()
        node = getattr(getattr(self.config.app, "state", None), "node", None)
        if node is not None:
            try:
                await node.close_all(CloseCode.GOING_AWAY, within=CLOSE_TIMEOUT)
            except Exception:
                log.warning("graceful close of WebSockets failed", exc_info=True)
        await super().shutdown(sockets)
