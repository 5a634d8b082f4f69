"""Children that speak JSON lines (load generators, the raw and peer servers): start
them, follow their events, stop them and merge what the load generators measured."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from .procs import PY, Proc, Stack, _preexec, dumps

log = logging.getLogger(__name__)


def _logfile(path: Path) -> Any:
    return open(path, "ab")  # the child writes to it; closed when the bench exits


class Child:
    """An asyncio subprocess: JSON events on its stdout, commands on its stdin."""

    def __init__(self, role: str, proc: asyncio.subprocess.Process) -> None:
        self.role = role
        self.proc = proc
        self.last: dict[str, dict[str, Any]] = {}
        self.changed = asyncio.Event()
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def start(
        cls,
        stack: Stack,
        role: str,
        module: str,
        cfg: dict[str, Any],
        *,
        argv: Sequence[str] | None = None,
        cwd: Path | None = None,
    ) -> Child:
        """``python -m module CONFIG_JSON``, or ``argv`` + CONFIG_JSON (another program)."""
        logf = _logfile(stack.dir / f"{role}{len(stack.usage.procs)}.log")
        proc = await asyncio.create_subprocess_exec(
            *(argv or (PY, "-m", module)),
            dumps(cfg),
            cwd=cwd,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=logf,
            preexec_fn=_preexec,
            limit=1 << 24,
        )
        stack.usage.add(Proc(role, proc))
        stack.async_children.append(proc)
        return cls(role, proc)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while True:
            line = await self.proc.stdout.readline()
            if not line:
                self.last["exit"] = {}
                self.changed.set()
                return
            try:
                ev = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            self.last[ev.get("event", "?")] = ev
            self.changed.set()

    def get(self, event: str) -> dict[str, Any] | None:
        return self.last.get(event)

    async def wait_for(self, event: str, within: float) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while event not in self.last:
            if "exit" in self.last:
                raise RuntimeError(f"{self.role} exited before '{event}' (see its log)")
            self.changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self.role}: no '{event}' within {within:.0f} s")
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except TimeoutError:
                pass
        return self.last[event]

    async def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        if self.proc.returncode is None:
            self.proc.stdin.write(line.encode() + b"\n")
            await self.proc.stdin.drain()

    async def stop(self, within: float = 30.0) -> None:
        try:
            await self.send("stop")
            await self.wait_for("done", within)
        except (RuntimeError, TimeoutError, ConnectionError) as e:
            log.warning("%s did not stop cleanly: %s", self.role, e)
        if self.proc.returncode is None:
            self.proc.terminate()
        try:
            await asyncio.wait_for(self.proc.wait(), 10)
        except TimeoutError:
            self.proc.kill()
        self.reader.cancel()


class Loadgens:
    """One or more load generator processes sharing the users between them."""

    def __init__(self, children: list[Child], outs: list[Path]) -> None:
        self.children = children
        self.outs = outs

    @classmethod
    async def start(
        cls,
        stack: Stack,
        *,
        mode: str,
        urls: Sequence[str],
        users: Sequence[str],
        processes: int = 1,
        expect_max: int = 0,
        **opts: Any,
    ) -> Loadgens:
        processes = max(1, min(processes, len(users)))
        children, outs = [], []
        for k in range(processes):
            out = stack.dir / f"loadgen{k}.json"
            cfg = {
                "mode": mode,
                "url": urls[k % len(urls)],
                "users": list(users[k::processes]),
                "secret": stack.secret,
                "out": str(out),
                "expect_max": expect_max,
                **opts,
            }
            children.append(await Child.start(stack, "loadgen", "bench.loadgen", cfg))
            outs.append(out)
        return cls(children, outs)

    async def connected(self, within: float) -> dict[str, Any]:
        evs = [await c.wait_for("connected", within) for c in self.children]
        return {
            "ok": sum(e["ok"] for e in evs),
            "failed": sum(e["failed"] for e in evs),
            "seconds": max(e["seconds"] for e in evs),
            "t": min((e.get("t") or 0) for e in evs),
        }

    def progress(self, key: str) -> int:
        return sum(int((c.get("progress") or {}).get(key, 0)) for c in self.children)

    async def finish(self) -> dict[str, Any]:
        await asyncio.gather(*(c.stop() for c in self.children))
        merged: dict[str, Any] = {"latencies_ms": []}
        for path in self.outs:
            r = orjson.loads(path.read_bytes())
            for k, v in r.items():
                if k == "latencies_ms":
                    merged[k].extend(v)
                elif k in ("first_rx", "first_connect"):
                    merged[k] = min(v, merged.get(k) or v) if v else merged.get(k, 0)
                elif k in ("last_rx", "connect_seconds"):
                    merged[k] = max(v, merged.get(k, 0))
                elif isinstance(v, int | float) and not isinstance(v, bool):
                    merged[k] = merged.get(k, 0) + v
                elif isinstance(v, dict):
                    d = merged.setdefault(k, {})
                    for x, y in v.items():
                        d[x] = d.get(x, 0) + y
        return merged
