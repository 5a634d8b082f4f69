"""What every scenario shares: the payload, who gets message ``i``, pacing, progress."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from rich.console import Console

err = Console(stderr=True, highlight=False)

MAX_BATCH = 500
ACK_DELAY_MS = 5.0
TICK = 0.01  # seconds between the small batches of a paced producer


def payload(i: int) -> dict[str, Any]:
    """Message ``i``: its sequence number and the wall time it was handed over (``ts``)."""
    return {"i": i, "ts": time.time(), "text": f"Your order #{i} has shipped", "kind": "bench"}


def user_ids(n: int) -> list[str]:
    return [f"u{i}" for i in range(n)]


def user_of(i: int, n: int) -> str:
    return f"u{i % n}"


async def paced(
    total: int,
    send: Callable[[int, int], Awaitable[Any]],
    *,
    rate: float | None = None,
    batch: int = MAX_BATCH,
    concurrency: int = 1,
    stop: asyncio.Event | None = None,
) -> float:
    """Call ``send(first, count)`` until ``total`` items went out (or ``stop`` is set:
    no new batch starts, those in flight finish); returns the seconds it took. Without
    ``rate`` as fast as ``send`` returns (``concurrency`` batches in flight); with
    ``rate``, small batches on a 10 ms clock (each message is stamped when its batch is
    built, so the clock adds nothing to the measured latency)."""
    t0 = time.monotonic()
    stop = stop or asyncio.Event()
    if rate:
        step = max(1, min(batch, round(rate * TICK)))
        sent = 0
        while sent < total and not stop.is_set():
            n = min(step, total - sent)
            wait = t0 + sent / rate - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            await send(sent, n)
            sent += n
        return time.monotonic() - t0
    gate = asyncio.Semaphore(concurrency)
    tasks = []

    async def one(first: int, n: int) -> None:
        try:
            await send(first, n)
        finally:
            gate.release()

    for first in range(0, total, batch):
        await gate.acquire()
        if stop.is_set():
            break
        tasks.append(asyncio.create_task(one(first, min(batch, total - first))))
    await asyncio.gather(*tasks)
    return time.monotonic() - t0


class Ticker:
    """A progress line on stderr at most every ``every`` seconds."""

    def __init__(self, name: str, every: float = 2.0, quiet: bool = False) -> None:
        self.name = name
        self.every = every
        self.quiet = quiet
        self.t0 = time.monotonic()
        self.last = 0.0

    def __call__(self, text: str, *, force: bool = False) -> None:
        now = time.monotonic()
        if self.quiet or (not force and now - self.last < self.every):
            return
        self.last = now
        err.print(f"[dim]{now - self.t0:7.1f}s[/] [bold]{self.name}[/] {text}")
