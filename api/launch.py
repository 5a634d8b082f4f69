"""``courier serve`` from start to exit, in the order that keeps one instance's data safe:

1. take the data folder's lock (embedded Redis only: a second instance on the folder is
   refused in one line and touches nothing of the first);
2. bind the HTTP port (busy: refused in one line, before anything started);
3. start the embedded Redis (``api/embedded.py``) and record the instance;
4. PING Redis with short timeouts (one line naming the setting to fix when it fails);
5. run uvicorn on the bound socket; the banner is printed once everything started;
6. on SIGTERM or Ctrl-C: Courier's graceful shutdown (sockets closed with 1001,
   messages handed back, presence left), and only then the embedded Redis stops.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from delivery.settings import Settings

from . import embedded, logs
from .instance import DataFolder, FolderLock, Instance, InstanceError, shown_url
from .preflight import check_key_layout, check_redis
from .redis_server import RedisServer

BACKLOG = 2048


def bind(host: str, port: int) -> socket.socket:
    """The listening socket uvicorn will serve on, bound before anything starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError as e:
        sock.close()
        raise InstanceError(
            f"cannot listen on {host}:{port} ({e.strerror or e}): another program (or "
            "another courier serve) uses it; choose another with --port or COURIER_PORT"
        ) from None
    return sock


def _exit_cleanly(signum: int, _frame: Any) -> None:
    # uvicorn re-raises the signal it shut down for; make it a normal exit so the
    # embedded Redis is stopped after the graceful shutdown, with no traceback.
    sys.exit(0)


def command_name(argv0: str | None = None, cwd: str | None = None) -> str:
    """How a reader of this terminal runs the ``courier`` that is running: ``courier``
    when that is the one on PATH, else its path (relative when under the working
    directory: ``.venv/bin/courier`` after ``./scripts/serve``)."""
    exe = Path(argv0 if argv0 is not None else sys.argv[0]).absolute()
    on_path = shutil.which("courier")
    if exe.name != "courier" or (on_path and Path(on_path).absolute() == exe):
        return "courier"
    here = Path(cwd if cwd is not None else os.getcwd()).absolute()
    return str(exe.relative_to(here)) if exe.is_relative_to(here) else str(exe)


def banner(settings: Settings, command: str = "courier") -> str:
    base = f"http://{settings.host}:{settings.port}"
    docs = f"API docs {base}/docs, " if settings.api_docs else ""
    token = f"{command} token"
    return (
        f"Courier on {base}  ({docs}WebSocket ws://{settings.host}:{settings.port}/v1/ws)\n"
        f"Try:  {token} alice            # a user token for the WebSocket\n"
        f"      {token} backend --role service   # may POST {base}/v1/messages"
    )


@contextmanager
def embedded_redis(
    folder: DataFolder, lock: FolderLock, settings: Settings, echo: Callable[[str], None]
) -> Iterator[RedisServer]:
    server, binary = embedded.start(folder.redis_dir, say=echo)
    try:
        http = f"http://{settings.host}:{settings.port}"
        lock.record(
            Instance(
                pid=os.getpid(),
                redis_url=server.url,
                data_dir=str(folder.path),
                redis_binary=binary.path,
                redis_version=binary.version_text,
                http=http,
            )
        )
        echo(
            f"No COURIER_REDIS_URL set: started an embedded Redis {binary.version_text} "
            f"({binary.path}) at {server.url} (data in {server.data_dir}, AOF on)."
        )
        yield server
    finally:
        server.stop()


def serve(
    settings: Settings,
    *,
    consumers: bool,
    had_secret: bool,
    echo: Callable[[str], None],
    after_banner: Callable[[Settings], None] | None = None,
) -> int:
    """Run `courier serve`; its exit code. Start-up failures raise InstanceError."""
    from .app import create_app
    from .server import Server, config

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _exit_cleanly)
    folder = DataFolder(settings.data_dir)
    lock = folder.lock().acquire() if not settings.redis_url else None
    try:
        sock = bind(settings.host, settings.port)
        logs.configure(settings.log_level, settings.log_format)
        with _redis(folder, lock, settings, echo) as url:
            if not had_secret:
                echo(f"No COURIER_JWT_SECRET set: using the one kept in {folder.secret_file}.")
            settings = settings.model_copy(update={"redis_url": url})
            source = "COURIER_REDIS_URL" if lock is None else "the embedded Redis"
            version = check_redis(url, source=source, cluster=settings.redis_cluster)
            check_key_layout(settings)
            if lock is None:
                echo(f"Redis {version} at {shown_url(url)} (COURIER_REDIS_URL).")
            server = Server(config(create_app(settings, consumers=consumers), settings), settings)
            running = settings

            def started() -> None:
                echo(banner(running, command_name()))
                if after_banner is not None:
                    after_banner(running)

            server.on_started = started
            # Server closes WebSockets with 1001 and hands unacked messages back before
            # uvicorn's own shutdown (which would close them with 1012).
            server.run(sockets=[sock])
            return 0 if server.started else 3
    finally:
        if lock is not None:
            lock.release()


@contextmanager
def _redis(
    folder: DataFolder, lock: FolderLock | None, settings: Settings, echo: Callable[[str], None]
) -> Iterator[str]:
    if lock is None:
        assert settings.redis_url
        yield settings.redis_url
        return
    with embedded_redis(folder, lock, settings, echo) as server:
        yield server.url
