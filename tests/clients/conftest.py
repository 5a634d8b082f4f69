"""A real ``courier serve`` process for the client tests: its own port, the test's
Redis and keyspace, stopped (SIGTERM) and started again on the same port, frozen
(SIGSTOP) and thawed; plus a producer and the admin API to see what became of each
message."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from api.auth import issue
from api.redis_server import free_port
from delivery.keys import Keyspace
from delivery.producer import Producer
from delivery.settings import Settings
from tests.api.conftest import FAST, SECRET

COURIER = Path(sys.executable).with_name("courier")


class Serve:
    """One `courier serve`, started and stopped by the test."""

    def __init__(self, redis_url: str, keyspace: Keyspace, data_dir: Path, **settings: Any) -> None:
        self.port = free_port()  # bound by the process: start() moves when it was taken
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/v1/ws"
        self.log = data_dir / "serve.log"
        self.settings = Settings(
            redis_url=redis_url,
            key_prefix=keyspace.prefix,
            partitions=keyspace.partitions,
            jwt_secret=SECRET,
        )
        values = {
            "redis_url": redis_url,
            "key_prefix": keyspace.prefix,
            "partitions": keyspace.partitions,
            "jwt_secret": SECRET,
            "host": "127.0.0.1",
            "port": self.port,
            "data_dir": str(data_dir),
            "log_level": "INFO",
            **FAST,
            **settings,
        }
        self.env = {**os.environ, **{f"COURIER_{k.upper()}": str(v) for k, v in values.items()}}
        self.proc: asyncio.subprocess.Process | None = None
        self.http = httpx.AsyncClient(base_url=self.url, timeout=10)
        self.started = False  # once ready: its port is the one its clients know

    async def start(self) -> None:
        cmd = [str(COURIER)] if COURIER.exists() else [sys.executable, "-m", "api.cli"]
        with self.log.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                *cmd, "serve", env=self.env, stdout=log, stderr=log
            )
        deadline = time.monotonic() + 20
        while True:
            if self.proc.returncode is not None and await self._lost_its_port():
                return await self.start()
            assert self.proc.returncode is None, f"serve exited:\n{self.log.read_text()}"
            try:
                if (await self.http.get("/readyz")).status_code == 200:
                    self.started = True
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"not ready in 20 s:\n{self.log.read_text()}"
            await asyncio.sleep(0.05)

    async def _lost_its_port(self) -> bool:
        """Another process took the free port before its first start bound it: on to a
        new one (a restart stays where its clients are)."""
        taken = f"cannot listen on 127.0.0.1:{self.port}"
        if self.started or taken not in self.log.read_text(errors="replace"):
            return False
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/v1/ws"
        self.env["COURIER_PORT"] = str(self.port)
        await self.http.aclose()
        self.http = httpx.AsyncClient(base_url=self.url, timeout=10)
        return True

    async def stop(self, sig: int = signal.SIGTERM) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.returncode is not None:
            return
        proc.send_signal(sig)
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            proc.kill()
            await proc.wait()

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    def freeze(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def token(self, user: str, *, ttl: int = 3600, role: str = "user") -> str:
        return issue(self.settings, user, role=role, ttl=ttl)

    def token_until(self, user: str, exp: float) -> str:
        return jwt.encode({"sub": user, "exp": exp}, SECRET, algorithm="HS256")

    async def message(self, mid: str) -> dict[str, Any]:
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
            await asyncio.sleep(0.05)


@pytest.fixture
async def serve(redis_url: str, keyspace: Keyspace, r: Any, tmp_path: Path) -> AsyncIterator[Any]:
    """``server = await serve(heartbeat_interval_seconds=1)``: a started `courier serve`."""
    servers: list[Serve] = []

    async def start(**settings: Any) -> Serve:
        data_dir = tmp_path / f"serve{len(servers)}"
        data_dir.mkdir()
        s = Serve(redis_url, keyspace, data_dir, **settings)
        servers.append(s)
        await s.start()
        return s

    yield start
    for s in servers:
        if s.proc is not None and s.proc.returncode is None:
            s.thaw()
        await s.stop()
        await s.http.aclose()


@pytest.fixture
async def producer(redis_url: str, keyspace: Keyspace) -> AsyncIterator[Producer]:
    p = Producer.from_settings(
        Settings(redis_url=redis_url, key_prefix=keyspace.prefix, partitions=keyspace.partitions)
    )
    yield p
    await p.aclose()
