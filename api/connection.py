"""One client connection on this node: its state, outbox, unacked messages, rate
limit and heartbeat clock. No Redis here; the endpoint, the drain and the node do I/O.

Its state changes only through :meth:`Connection.request_close` and
:meth:`Connection.closed`, along the table :data:`TRANSITIONS`::

    OPEN ──request_close──► CLOSING ──closed──► CLOSED
      └──────────────────closed──────────────────┘

A closing connection queues no more frames (:meth:`Connection.offer` refuses them)
and serves no more client frames; its writer sends what is queued and the close
frame (a client that does not take them within CLOSE_GRACE seconds is dropped).

What one connection may hold is bounded: ``queue_size`` frames and ``max_chars``
characters queued and not yet written to its socket (the socket's own buffer is
bounded by the same figure, see :class:`api.wire.EdgeProtocol`), and ``max_unacked``
messages pushed and not acknowledged. A connection past a bound is closed (1008): its
unacknowledged messages go back and reach it again, under flow control, when it
reconnects.

A node holds thousands of these for hours, so they are small: slots, a plain list as
the outbox, and futures made only while somebody waits (the writer for frames, the
drain for acks) instead of a Queue and Events per connection."""

from __future__ import annotations

import asyncio
import math
from enum import Enum

from delivery import clock
from delivery.exceptions import IllegalTransition
from delivery.metrics import DELIVER_TO_ACK_SECONDS, observe_many

from .auth import Role
from .protocol import CloseCode, reason_of
from .wire import Flusher, Wire

CLOSE_GRACE = 2.0  # how long a closing connection may flush its outbox and say goodbye
UNACKED_REASON = "too many unacknowledged messages: ack what you receive"


class State(Enum):
    OPEN = "open"  # frames flow both ways
    CLOSING = "closing"  # a close was asked for: the writer flushes and sends it
    CLOSED = "closed"  # the close frame went out, or the socket is gone


TRANSITIONS: dict[State, frozenset[State]] = {
    State.OPEN: frozenset({State.CLOSING, State.CLOSED}),
    State.CLOSING: frozenset({State.CLOSED}),
    State.CLOSED: frozenset(),
}


def check_transition(old: State, new: State) -> None:
    """Raise :class:`IllegalTransition` unless ``old -> new`` is in the table."""
    if new not in TRANSITIONS[old]:
        raise IllegalTransition(f"connection state {old.value} -> {new.value} is not allowed")


class TokenBucket:
    """Client frames allowed per second, with a burst."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.stamp = clock.monotonic()

    def take(self) -> bool:
        now = clock.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class Connection:
    __slots__ = (
        "_ready",
        "_room",
        "_state",
        "_watchdog",
        "_writing",
        "address",
        "bucket",
        "close_code",
        "close_reason",
        "conn_id",
        "device",
        "drain_more",
        "draining",
        "flusher",
        "last_seen",
        "max_chars",
        "max_unacked",
        "needs_drain",
        "node_id",
        "outbox",
        "outbox_chars",
        "queue_size",
        "role",
        "token_exp",
        "topics",
        "unacked",
        "user_id",
        "wire",
    )

    def __init__(
        self,
        wire: Wire,
        *,
        conn_id: str,
        user_id: str,
        role: Role,
        node_id: str,
        queue_size: int,
        bucket: TokenBucket,
        max_chars: int = 4 * 1024 * 1024,
        max_unacked: int = 10_000,
        device: str = "",
        address: str = "",
        token_exp: float = math.inf,
    ) -> None:
        self.wire = wire
        self.conn_id = conn_id
        self.user_id = user_id
        self.role = role
        self.node_id = node_id
        self.device = device
        self.address = address
        self.outbox: list[str] = []  # frames the writer has not taken yet
        self.outbox_chars = 0  # their characters
        self._writing = 0  # characters the writer took and is still writing
        self.queue_size = queue_size
        self.max_chars = max_chars
        self.max_unacked = max_unacked
        self.unacked: dict[str, float] = {}  # message id -> when it was pushed (monotonic)
        self.needs_drain = False  # a drain failed: the node's refresh starts another
        self.draining = False  # one drain at a time (see api.drain.drain)
        self.drain_more = False  # asked for another drain while one ran
        self.bucket = bucket
        self.last_seen = clock.monotonic()
        self.topics: set[str] = set()
        self.token_exp = token_exp  # unix seconds; closed with 4401 then (api.expiry)
        self._state = State.OPEN
        self.close_code: int | None = None  # ours, the client's, or 1006 when it was lost
        self.close_reason = ""
        self._ready: asyncio.Future[None] | None = None  # the writer waits for frames
        self._room: asyncio.Future[None] | None = None  # the drain waits for acks or writes
        self._watchdog: asyncio.TimerHandle | None = None
        # writes the outbox at the end of the loop turn (api.wire.Flusher); None: the
        # writer task writes everything
        self.flusher: Flusher | None = None

    @property
    def state(self) -> State:
        return self._state

    @property
    def is_open(self) -> bool:
        return self._state is State.OPEN

    def _move(self, new: State) -> None:
        check_transition(self._state, new)
        self._state = new

    @property
    def queued_chars(self) -> int:
        """Characters offered and not yet written to the socket."""
        return self.outbox_chars + self._writing

    def offer(
        self,
        frame: str,
        message_id: str | None = None,
        *,
        first: bool = False,
        soft: bool = False,
    ) -> bool:
        """Queue a frame for the writer; False when closed or the reader is too slow.
        ``first`` puts it before everything queued (the greeting: a message pushed while
        the connection registered must not go out before ``connected``). Past a bound
        the connection is closed (1008), unless ``soft`` (the drain, which hands what
        does not fit back and waits for room): then the frame is only refused."""
        if self._state is not State.OPEN:
            return False
        if first:
            self.outbox.insert(0, frame)
            self.outbox_chars += len(frame)
            self._wake()
            return True
        full = (
            len(self.outbox) >= self.queue_size or self.queued_chars + len(frame) > self.max_chars
        )
        too_many = message_id is not None and len(self.unacked) >= self.max_unacked
        if full or too_many:
            if soft:
                return False
            self.outbox.clear()  # it would never catch up; its unacked messages go back
            self.outbox_chars = 0
            self.request_close(CloseCode.SLOW_READER, None if full else UNACKED_REASON)
            return False
        self.outbox.append(frame)
        self.outbox_chars += len(frame)
        if message_id is not None:
            self.unacked[message_id] = clock.monotonic()
        self._wake()
        return True

    def control_frame(self) -> bool:
        """A protocol-level ping or pong came (see :class:`api.wire.EdgeProtocol`): it
        counts against the rate limit like any frame; False (and 4429) when over it."""
        if self.bucket.take():
            return True
        self.request_close(CloseCode.RATE_LIMITED)
        return False

    def request_close(self, code: int, reason: str | None = None) -> None:
        """OPEN -> CLOSING: ask the writer to close the socket with `code` after what is
        queued (`reason`: the code's own unless given). The first close asked for wins;
        later ones change nothing. A client that does not take the close frame within
        CLOSE_GRACE seconds is dropped."""
        if self._state is not State.OPEN:
            return
        self._move(State.CLOSING)
        if reason is None:
            reason = reason_of(code)
        self.close_code, self.close_reason = code, reason
        self._wake()
        self._watchdog = asyncio.get_running_loop().call_later(CLOSE_GRACE, self.wire.abort)

    def closed(self, code: int | None = None) -> None:
        """-> CLOSED: the close frame went out, the client closed, or the socket is
        gone. `code` (the client's, or 1006) is kept only when no close code was set
        before: the first close wins here too. Closing a closed connection changes
        nothing."""
        if self._state is not State.CLOSED:
            self._move(State.CLOSED)
        if self.close_code is None and code is not None:
            self.close_code = code

    def finished(self) -> None:
        """The endpoint is done with this connection: CLOSED, watchdog off."""
        self.closed()
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    async def frames_ready(self) -> None:
        """Until there is something to write (or to close)."""
        if self.outbox or self._state is not State.OPEN:
            return
        self._ready = asyncio.get_running_loop().create_future()
        try:
            await self._ready
        finally:
            self._ready = None

    def _wake(self) -> None:
        if self.flusher is not None and self._state is State.OPEN:
            self.flusher.mark(self)  # flush_now() once this loop turn's callbacks ran
            return
        self._wake_writer()

    def _wake_writer(self) -> None:
        if self._ready is not None and not self._ready.done():
            self._ready.set_result(None)

    def flush_now(self) -> None:
        """Write the whole outbox in one socket write now, if nothing else is being
        written and the socket takes it without waiting; otherwise wake the writer
        task, which does (frames keep their order: the writer's go first). A socket
        that is gone closes the connection (1006), as in the writer."""
        if not self.outbox:
            return
        if self._state is State.OPEN and not self._writing:
            try:
                wrote = self.wire.write_now(self.outbox, self.outbox_chars)
            except Exception:  # slow or gone: give up on this socket, as the writer does
                self.closed(CloseCode.ABNORMAL)
                self.wire.abort()
                self._wake_writer()
                return
            if wrote:
                self.outbox = []
                self.outbox_chars = 0
                self._made_room()
                return
        self._wake_writer()

    def take_outbox(self) -> list[str]:
        """Everything queued, for the writer (their characters count as queued until
        :meth:`written`)."""
        frames, self.outbox = self.outbox, []
        self._writing += self.outbox_chars
        self.outbox_chars = 0
        self._made_room()
        return frames

    def written(self) -> None:
        """The writer wrote what it took to the socket."""
        self._writing = 0
        self._made_room()

    async def wait_room(self, timeout: float) -> bool:  # noqa: ASYNC109
        """Until acks or the writer make room for more frames; False after `timeout` s.
        Several drains of one connection (see Node.drain_again) share the wake-up."""
        if self._room is None:
            self._room = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(self._room)  # a timeout must not cancel the others'
            return True
        except TimeoutError:
            return False

    def _made_room(self) -> None:
        if self._room is not None:
            room, self._room = self._room, None
            room.set_result(None)

    def acked_ids(self, ids: list[str]) -> None:
        now, pop = clock.monotonic(), self.unacked.pop
        waited = [now - pushed for mid in ids if (pushed := pop(mid, None)) is not None]
        observe_many(DELIVER_TO_ACK_SECONDS, waited)
        self._made_room()

    def seen(self) -> None:
        self.last_seen = clock.monotonic()

    def log_ids(self) -> dict[str, str]:
        """Fields JSON logs carry to follow one connection across processes."""
        return {"user_id": self.user_id, "conn_id": self.conn_id, "node_id": self.node_id}
