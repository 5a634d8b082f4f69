"""The processes a benchmark starts and watches: a private redis-server, ``courier
serve`` edges, the peer and raw servers, load generators; CPU and memory per process.

Every process is started by its own command line (``python -m ...``) so that the
numbers of one never include another's work; psutil reads their CPU time and RSS.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psutil

from api.redis_server import RedisServer, free_port

from .cluster import LocalCluster

log = logging.getLogger(__name__)

PY = sys.executable


def raise_nofile(wanted: int = 1_048_576) -> int:
    """Raise this process's open-file limit as far as allowed; returns the new soft limit."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, max(hard, wanted)))
    except (ValueError, OSError):
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def run(coro: Any) -> Any:
    """Run a coroutine on uvloop when it is installed (as uvicorn does), else asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def _preexec() -> None:  # runs in the child before exec
    raise_nofile()
    with contextlib.suppress(Exception):  # Linux: the child ends when the bench dies
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Proc:
    """A child process with a role name (server, redis, loadgen, peer, raw)."""

    role: str
    popen: subprocess.Popen[bytes] | asyncio.subprocess.Process
    ps: psutil.Process = field(init=False)
    cpu0: float = 0.0

    def __post_init__(self) -> None:
        self.ps = psutil.Process(self.popen.pid)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def cpu(self) -> float:
        try:
            t = self.ps.cpu_times()
            return float(t.user + t.system)
        except psutil.Error:
            return self.cpu0

    def rss_mb(self) -> float:
        try:
            return float(self.ps.memory_info().rss) / 1e6
        except psutil.Error:
            return 0.0

    def mark(self) -> None:
        self.cpu0 = self.cpu()


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (all cores, every process)."""
    t = psutil.cpu_times()
    return float(sum(getattr(t, k, 0.0) for k in ("user", "nice", "system", "irq", "softirq")))


class Usage:
    """CPU seconds (since :meth:`mark`) and RSS per role, summed over its processes;
    and what else ran on the machine meanwhile (:meth:`context`)."""

    def __init__(self) -> None:
        self.procs: list[Proc] = []
        self.me = psutil.Process()
        self.me_cpu0 = 0.0
        self.tools0 = 0.0
        self.peak_rss: dict[str, float] = {}
        self.t0 = 0.0
        self.busy0 = 0.0
        self.load0 = 0.0
        self.load_max = 0.0

    def add(self, p: Proc) -> Proc:
        self.procs.append(p)
        return p

    def mark(self) -> None:
        for p in self.procs:
            p.mark()
        t = self.me.cpu_times()
        self.me_cpu0 = t.user + t.system
        self.tools0 = t.children_user + t.children_system
        self.t0 = time.monotonic()
        self.busy0 = machine_busy_seconds()
        self.load0 = self.load_max = os.getloadavg()[0]

    def sample(self) -> None:
        for role, mb in self.rss().items():
            self.peak_rss[role] = max(self.peak_rss.get(role, 0.0), mb)
        self.load_max = max(self.load_max, os.getloadavg()[0])

    def context(self) -> dict[str, Any]:
        """The machine during the measured phase (since :meth:`mark`): its 1-minute load
        average (at the start, the highest seen, at the end; it counts this benchmark's
        own processes too) and the CPU seconds that processes other than this
        benchmark's used (other engineers' work on a shared machine)."""
        ours = sum(self.cpu_seconds().values())
        busy = machine_busy_seconds() - self.busy0
        load = os.getloadavg()[0]
        return {
            "load_avg_1m": {
                "start": round(self.load0, 2),
                "max": round(max(self.load_max, load), 2),
                "end": round(load, 2),
            },
            "measured_s": round(time.monotonic() - self.t0, 3),
            "other_cpu_s": round(max(busy - ours, 0.0), 3),
        }

    def cpu_seconds(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for p in self.procs:
            out[p.role] = round(out.get(p.role, 0.0) + p.cpu() - p.cpu0, 3)
        t = self.me.cpu_times()
        out["bench"] = round(t.user + t.system - self.me_cpu0, 3)
        # short-lived tools the bench ran and waited for meanwhile (redis-benchmark)
        tools = t.children_user + t.children_system - self.tools0
        if tools > 0.005:
            out["tools"] = round(tools, 3)
        return out

    def rss(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for p in self.procs:
            out[p.role] = round(out.get(p.role, 0.0) + p.rss_mb(), 1)
        out["bench"] = round(self.me.memory_info().rss / 1e6, 1)
        return out


def server_env(redis_url: str, secret: str, prefix: str, port: int, **extra: Any) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        COURIER_REDIS_URL=redis_url,
        COURIER_JWT_SECRET=secret,
        COURIER_KEY_PREFIX=prefix,
        COURIER_HOST="127.0.0.1",
        COURIER_PORT=str(port),
        COURIER_LOG_LEVEL="WARNING",
    )
    for k, v in extra.items():
        env[f"COURIER_{k.upper()}"] = str(v)
    return env


def spawn(
    role: str, args: Sequence[str], *, env: dict[str, str] | None = None, log_to: Path | None = None
) -> subprocess.Popen[bytes]:
    out = open(log_to, "ab") if log_to else subprocess.DEVNULL
    return subprocess.Popen(
        list(args), env=env, stdout=out, stderr=subprocess.STDOUT, preexec_fn=_preexec
    )


async def wait_http(
    port: int, path: str = "/healthz", within: float = 30.0, alive: Callable[[], bool] | None = None
) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise RuntimeError(f"the process behind port {port} exited")
        try:
            status, _ = await http_get("127.0.0.1", port, path, within=1.0)
            if status == 200:
                return
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            pass
        await asyncio.sleep(0.05)
    raise TimeoutError(f"nothing answered on port {port}{path}")


async def http_get(host: str, port: int, path: str, within: float = 5.0) -> tuple[int, bytes]:
    """A minimal HTTP/1.1 GET (no client library, so timing it measures the server)."""

    async def go() -> tuple[int, bytes]:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(
                f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
            )
            await writer.drain()
            data = await reader.read()
        finally:
            writer.close()
        head, _, body = data.partition(b"\r\n\r\n")
        return int(head.split(b" ", 2)[1]), body

    return await asyncio.wait_for(go(), within)


class Stack:
    """Everything one scenario started; :meth:`close` stops it all, newest first."""

    def __init__(self, name: str) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=f"courier-bench-{name}-"))
        self.usage = Usage()
        self.secret = secrets.token_urlsafe(24)
        self.prefix = f"bench{secrets.token_hex(3)}"
        self.redis: RedisServer | None = None
        self.cluster: LocalCluster | None = None
        self.redis_url = ""
        self.children: list[subprocess.Popen[bytes]] = []
        self.async_children: list[asyncio.subprocess.Process] = []
        self.server_ports: list[int] = []

    def start_redis(self, url: str | None = None, appendfsync: str = "everysec") -> str:
        if url:
            self.redis_url = url
            return url
        self.redis = RedisServer(self.dir / "redis", appendfsync=appendfsync).start()
        assert self.redis.proc is not None
        self.usage.add(Proc("redis", self.redis.proc))
        self.redis_url = self.redis.url
        return self.redis_url

    def start_cluster(
        self, masters: int = 3, replicas: int = 1, appendfsync: str = "always"
    ) -> str:
        """A local Redis Cluster (bench/cluster.py); its nodes' CPU counts as roles
        ``redis-master<i>`` and ``redis-replica<i>`` (their roles when it started)."""
        self.cluster = LocalCluster(
            self.dir / "cluster", masters=masters, replicas=replicas, appendfsync=appendfsync
        ).start()
        roles = self.cluster.roles()
        kinds = {"master": 0, "slave": 0}
        for node in self.cluster.nodes:
            assert node.proc is not None
            kind = roles[node.port]
            name = "redis-master" if kind == "master" else "redis-replica"
            self.usage.add(Proc(f"{name}{kinds[kind]}", node.proc))
            kinds[kind] += 1
        self.redis_url = self.cluster.url
        return self.redis_url

    async def start_courier(self, n: int = 1, **settings: Any) -> list[int]:
        """``n`` ``courier serve`` processes (edge + consumers) on free ports."""
        ports = []
        for i in range(n):
            port = free_port()
            env = server_env(
                self.redis_url,
                self.secret,
                self.prefix,
                port,
                data_dir=self.dir / f"server{i}",
                **settings,
            )
            p = spawn(
                "server",
                [PY, "-m", "api.cli", "serve"],
                env=env,
                log_to=self.dir / f"server{i}.log",
            )
            self.children.append(p)
            self.usage.add(Proc("server", p))
            ports.append(port)
        for port, p in zip(ports, self.children[-n:], strict=True):
            await wait_http(port, alive=lambda p=p: p.poll() is None)  # type: ignore[misc]
        self.server_ports += ports
        return ports

    def start(
        self, role: str, args: Sequence[str], env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        p = spawn(role, args, env=env, log_to=self.dir / f"{role}{len(self.children)}.log")
        self.children.append(p)
        self.usage.add(Proc(role, p))
        return p

    def logs(self) -> str:
        return str(self.dir)

    async def close(self) -> None:
        for a in self.async_children:
            if a.returncode is None:
                a.terminate()
        for a in self.async_children:
            try:
                await asyncio.wait_for(a.wait(), 10)
            except TimeoutError:
                a.kill()
        for p in reversed(self.children):
            if p.poll() is None:
                p.terminate()
        for p in reversed(self.children):
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        if self.redis is not None:
            self.redis.kill()  # nothing to keep: skip writing the AOF out
        if self.cluster is not None:
            self.cluster.stop()
        if os.environ.get("COURIER_BENCH_KEEP"):
            log.warning("bench files kept in %s", self.dir)
        else:  # logs, load generator results and the Redis data (large after overload)
            shutil.rmtree(self.dir, ignore_errors=True)


def dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()
