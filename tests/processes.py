"""`courier serve` as a real process for the tests that need one: signals (SIGSTOP,
SIGKILL, SIGTERM), its memory (RSS), its own event loop under attack.

``Proc`` is one process; :func:`serve_env` is the environment a test deployment runs
with (the test's Redis and key prefix, short timeouts); the ``serve`` fixtures of the
test modules start processes with it and stop them all at the end.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import psutil

from api.redis_server import free_port
from delivery.keys import Keyspace

COURIER = str(Path(sys.executable).with_name("courier"))
SECRET = "courier-test-secret-0123456789abcdef"  # every test token is signed with it


_PICKED: set[str] = set()  # the ports serve_env picked (the tests gave none of them)


def _pick() -> int:
    port = free_port()
    _PICKED.add(str(port))
    return port


def serve_env(
    name: str, redis_url: str, keyspace: Keyspace, data_dir: Path, **env: str
) -> dict[str, str]:
    """The environment of one test node: this test's Redis and keys, short timeouts."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("COURIER_")},
        "COURIER_REDIS_URL": redis_url,
        "COURIER_KEY_PREFIX": keyspace.prefix,
        "COURIER_PARTITIONS": str(keyspace.partitions),
        "COURIER_JWT_SECRET": SECRET,
        "COURIER_PORT": str(_pick()),
        "COURIER_NODE_ID": f"{name}-{secrets.token_hex(3)}",
        "COURIER_DATA_DIR": str(data_dir / name),
        "COURIER_ACK_TIMEOUT_SECONDS": "1",
        "COURIER_HEARTBEAT_INTERVAL_SECONDS": "0.3",
        "COURIER_HEARTBEAT_TIMEOUT_SECONDS": "1.5",
        "COURIER_CLAIM_IDLE_SECONDS": "1",
        "COURIER_SCHEDULER_INTERVAL_SECONDS": "0.05",
        "COURIER_RETRY_BASE_SECONDS": "0.1",
        "COURIER_RETRY_MAX_SECONDS": "0.5",
        "COURIER_LOG_LEVEL": "INFO",
        **env,
    }


class Proc:
    """One `courier serve` subprocess. Its port (``free_port()``) is bound by the
    process a moment after it is picked: when another process of the machine took it
    in between, :meth:`ready` starts it again on another port (only on a port
    serve_env picked; a port the test chose is the test's business)."""

    def __init__(self, name: str, env: dict[str, str], log_dir: Path, *args: str) -> None:
        self.name = name
        self.node_id = env["COURIER_NODE_ID"]
        self.env = env
        self.args = args
        self.log = log_dir / f"{name}.log"
        self._spawn()

    def _spawn(self) -> None:
        self.port = int(self.env["COURIER_PORT"])
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/v1/ws"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [COURIER, "serve", *self.args], env=self.env, stdout=out, stderr=subprocess.STDOUT
            )

    def _lost_its_port(self) -> bool:
        """It exited because its picked port was taken: started again on another."""
        port = self.env["COURIER_PORT"]
        if port not in _PICKED or f"cannot listen on 127.0.0.1:{port}" not in self.log_text():
            return False
        self.env = {**self.env, "COURIER_PORT": str(_pick())}
        self._spawn()
        return True

    async def ready(self, within: float = 20) -> None:
        deadline = time.monotonic() + within
        async with httpx.AsyncClient(timeout=1) as http:
            while True:
                if self.proc.poll() is not None and self._lost_its_port():
                    continue
                assert self.proc.poll() is None, f"{self.name} exited:\n{self.log_text()}"
                try:
                    if (await http.get(self.url + "/readyz")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, f"{self.name} not ready:\n{self.log_text()}"
                await asyncio.sleep(0.05)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def rss(self) -> int:
        """The process's resident memory in bytes."""
        return int(psutil.Process(self.proc.pid).memory_info().rss)

    async def stop(self, sig: int = signal.SIGTERM) -> None:
        """Signal the process and wait for it without blocking the event loop (the
        test's clients must be able to answer the server's closing handshake)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a frozen one must hear the signal
            self.proc.send_signal(sig)
            try:
                await asyncio.to_thread(self.proc.wait, 10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                await asyncio.to_thread(self.proc.wait, 5)


ServeProc = Callable[..., Awaitable[Proc]]
"""The ``proc`` fixture (tests/api/conftest.py): ``await proc(name, *args, **env)``."""
