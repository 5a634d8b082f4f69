"""Acks gathered for ``ack_delay`` seconds and sent in one frame (up to 1000 ids).
Acks that could not go out wait for the next connection: the server hands the
unacked messages to it, and these acks settle them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from websockets.exceptions import ConnectionClosed

if TYPE_CHECKING:
    from .session import Session

MAX_ACK_IDS = 1000  # ids in one ack frame (the server's limit)


class Acks:
    def __init__(self, delay: float, session: Callable[[], Session | None]) -> None:
        self.delay = delay
        self._session = session  # the connection now, if any
        self.pending: list[str] = []
        self._timer: asyncio.TimerHandle | None = None
        self._flushing: asyncio.Task[None] | None = None

    def add(self, mid: str) -> None:
        self.pending.append(mid)

    def schedule(self, *, now: bool = False) -> None:
        """Send the pending acks in ``delay`` s (at once with ``now``)."""
        if not self.pending or self._timer is not None:
            return
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(0 if now else self.delay, self._start)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _start(self) -> None:
        self._timer = None
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self.flush())

    async def flush(self) -> None:
        """Send what is pending now; kept for the next connection if this one is gone."""
        session = self._session()
        while self.pending and session is not None and session.connected:
            batch, self.pending = self.pending[:MAX_ACK_IDS], self.pending[MAX_ACK_IDS:]
            frame: dict[str, Any] = {"type": "ack", "ids": batch}
            if len(batch) == 1:
                frame = {"type": "ack", "id": batch[0]}
            try:
                await session.send(frame)
            except ConnectionClosed:
                self.pending[:0] = batch
                return
