"""One client connection on this node: its send queue, its unacked messages, its
rate limit and heartbeat clock. No Redis here; the hub and the endpoint do I/O."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from enum import Enum

from starlette.websockets import WebSocket

from delivery.metrics import DELIVER_TO_ACK_SECONDS

from .auth import Role


class State(Enum):
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


@dataclass
class TokenBucket:
    """Client frames allowed per second, with a burst."""

    rate: float
    burst: int
    tokens: float = 0.0
    stamp: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.tokens = float(self.burst)

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class Connection:
    def __init__(
        self,
        ws: WebSocket,
        *,
        conn_id: str,
        user_id: str,
        role: Role,
        node_id: str,
        queue_size: int,
        bucket: TokenBucket,
        device: str = "",
        address: str = "",
    ) -> None:
        self.ws = ws
        self.conn_id = conn_id
        self.user_id = user_id
        self.role = role
        self.node_id = node_id
        self.device = device
        self.address = address
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=queue_size)
        self.unacked: dict[str, float] = {}  # message id -> when it was pushed (monotonic)
        self.acked = asyncio.Event()
        self.closing = asyncio.Event()  # set once a close is requested
        self.needs_drain = False  # a drain failed: the hub's refresh starts another
        self.bucket = bucket
        self.last_seen = time.monotonic()
        self.topics: set[str] = set()
        self.state = State.OPEN
        self.close_code: int | None = None
        self.close_reason = ""

    def offer(self, frame: str, message_id: str | None = None) -> bool:
        """Queue a frame for the writer; False when closed or the reader is too slow."""
        if self.state is not State.OPEN:
            return False
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.request_close(1008, "send buffer full: client reads too slowly")
            return False
        if message_id is not None:
            self.unacked[message_id] = time.monotonic()
        return True

    def request_close(self, code: int, reason: str) -> None:
        """Ask the writer to close the socket after what is queued (or at once when full)."""
        if self.state is not State.OPEN:
            return
        self.state = State.CLOSING
        self.close_code, self.close_reason = code, reason
        self.closing.set()
        while True:  # make room for the close sentinel
            try:
                self.queue.put_nowait(None)
                return
            except asyncio.QueueFull:
                self.queue.get_nowait()

    def acked_ids(self, ids: list[str]) -> None:
        for mid in ids:
            pushed = self.unacked.pop(mid, None)
            if pushed is not None:
                DELIVER_TO_ACK_SECONDS.observe(time.monotonic() - pushed)
        self.acked.set()

    def seen(self) -> None:
        self.last_seen = time.monotonic()
