"""The Node peer (``courier bench peer --peer node``): Socket.IO 4.8 with
``@socket.io/redis-adapter`` (``bench/node/server.js``) and a
``@socket.io/redis-emitter`` producer (``bench/node/producer.js``), each in its own
Node process, with the same clients (``bench.loadgen`` in ``socketio`` mode) and the
same messages as the other peers.

The Node packages are pinned in ``bench/node/package-lock.json``; when
``node_modules`` is missing or was installed from another lock file (or another Node),
the bench runs ``npm ci`` there itself, from the npm registry, and says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import orjson

from api.redis_server import free_port

from .common import Ticker, err, user_ids
from .driver import Child
from .flows import Opts, finish_loadgens, finish_result, start_clients
from .procs import Stack, http_get, wait_http
from .report import Result

NODE_DIR = Path(__file__).with_name("node")
STAMP = ".courier-installed"  # in node_modules: what it was installed from


class NodeMissing(RuntimeError):
    """node or npm is not on PATH."""


def tools() -> tuple[str, str]:
    """The node and npm executables; NodeMissing when either is not on PATH."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        raise NodeMissing(
            "the Node peer needs node (>= 18) and npm on PATH "
            f"(found node: {node or 'no'}, npm: {npm or 'no'})"
        )
    return node, npm


def _wanted(node: str) -> str:
    """What node_modules must have been installed from: the lock file and Node's version."""
    version = subprocess.run(
        [node, "--version"], capture_output=True, text=True, check=True, timeout=30
    ).stdout.strip()
    lock = (NODE_DIR / "package-lock.json").read_bytes()
    return f"{hashlib.sha256(lock).hexdigest()} node {version}"


def ensure_installed() -> str:
    """``npm ci`` in bench/node unless node_modules matches package-lock.json (one
    installer at a time: concurrent benches wait for it); returns the node executable."""
    node, npm = tools()
    want = _wanted(node)
    stamp = NODE_DIR / "node_modules" / STAMP
    with open(NODE_DIR / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with contextlib.suppress(OSError):
            if stamp.read_text() == want:
                return node
        why = "stale" if (NODE_DIR / "node_modules").exists() else "missing"
        err.print(
            f"[bold]node peer[/] bench/node/node_modules is {why}: running `npm ci` "
            "(packages pinned in bench/node/package-lock.json, from the npm registry)"
        )
        t0 = time.monotonic()
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=NODE_DIR,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0:
            raise RuntimeError(f"npm ci in {NODE_DIR} failed:\n{done.stderr[-2000:]}")
        stamp.write_text(want)
        err.print(f"[bold]node peer[/] installed in {time.monotonic() - t0:.1f}s")
    return node


async def start_node_server(stack: Stack, node: str) -> int:
    """``node server.js`` on a free port; the port."""
    port = free_port()
    cfg = {"port": port, "redis_url": stack.redis_url, "secret": stack.secret}
    server = await Child.start(
        stack, "server", "", cfg, argv=[node, str(NODE_DIR / "server.js")], cwd=NODE_DIR
    )
    await server.wait_for("listening", 30)
    await wait_http(port)
    return port


async def run_node(o: Opts, label: str = "node") -> Result:
    """Socket.IO on Node with the Redis adapter; the emitter in a producer process."""
    node = await asyncio.to_thread(ensure_installed)
    stack = Stack(label)
    tick = Ticker(label, quiet=o.quiet)
    try:
        stack.start_redis()
        port = await start_node_server(stack, node)
        users = user_ids(o.users)
        lg, connect = await start_clients(stack, o, "socketio", [f"ws://127.0.0.1:{port}"], users)
        tick(
            f"{connect['ok']}/{o.users} clients connected in {connect['seconds']:.1f}s", force=True
        )
        cfg: dict[str, Any] = {
            "redis_url": stack.redis_url,
            "users": o.users,
            "messages": o.messages,
            "rate": o.rate,
        }
        producer = await Child.start(
            stack, "producer", "", cfg, argv=[node, str(NODE_DIR / "producer.js")], cwd=NODE_DIR
        )
        await producer.wait_for("ready", 30)
        stack.usage.mark()
        await producer.send("start")
        t0 = float((await producer.wait_for("started", 30))["t"])
        last_move, last_seen = time.monotonic(), -1
        while True:
            await asyncio.sleep(0.25)
            stack.usage.sample()
            seen = lg.progress("unique")
            if seen != last_seen:
                last_seen, last_move = seen, time.monotonic()
            tick(f"received {seen:,}/{o.messages:,}")
            if seen >= o.messages:
                break
            if producer.get("failed") or producer.get("exit"):
                tick(f"the producer failed: {producer.get('failed')}", force=True)
                break
            produced = producer.get("produced")
            if produced and time.monotonic() - last_move > min(o.idle_timeout, 5.0):
                break
            if time.time() - t0 > o.timeout:
                break
        await asyncio.sleep(0.3)  # the last acks on their way
        _, body = await http_get("127.0.0.1", port, "/stats")
        acked = orjson.loads(body)["acked"]
        got = await finish_loadgens(stack, lg)
        produced = producer.get("produced") or {}
        emitted = int((producer.get("progress") or {}).get("sent", 0))
        await producer.stop()
        return finish_result(
            label,
            o,
            stack,
            got,
            t0=t0,
            t_end=got.get("last_rx") or time.time(),
            done=int(got.get("unique", 0)),
            connect=connect,
            messages=o.messages,
            acked_at_server=acked,
            emitted=int(produced.get("sent", emitted)),
            produce_seconds=round(produced["seconds"], 3) if produced else None,
        )
    finally:
        await stack.close()
