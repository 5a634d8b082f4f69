"""How a connection's frames get onto its socket.

:class:`EdgeProtocol` is uvicorn's sans-I/O WebSocket protocol with one ASGI extension,
``courier.wire``: the protocol itself, so the edge can write every frame queued for a
connection in one socket write (one system call) instead of one ASGI ``send`` per frame
through Starlette and uvicorn, and can drop a connection that stopped reading at once.
``courier serve`` (:func:`api.server.config`) runs it.

:class:`Wire` is what a :class:`~api.connection.Connection` writes through: the fast
path when the server offers the extension, plain ASGI messages otherwise (any other
ASGI server or uvicorn WebSocket implementation).
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from starlette.websockets import WebSocket
from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState
from websockets.frames import Frame
from websockets.http11 import Request
from websockets.protocol import OPEN

from .http_limits import error_response

log = logging.getLogger(__name__)

EXTENSION = "courier.wire"
SEND_TIMEOUT = 10.0  # how long a send may wait for a client that does not read
CHUNK_CHARS = 256 * 1024  # one socket write holds frames of about this many characters


def _header(n: int) -> bytes:
    """FIN + text opcode and the payload length (RFC 6455 5.2), no mask."""
    if n < 126:
        return bytes((0x81, n))
    if n < 65536:
        return struct.pack("!BBH", 0x81, 126, n)
    return struct.pack("!BBQ", 0x81, 127, n)


class Inbox:
    """The protocol's queue of ASGI receive events: what uvicorn uses of an
    asyncio.Queue (``put_nowait``, ``get``, ``empty``) without its four deques of
    ~760 bytes each, and :meth:`get_all` for the edge's reader. It holds few events:
    the protocol stops reading the socket once it queued the frames of one read, until
    the app has taken them (reading on instead measured worse: 116-118 us of server
    CPU per message against 110, as the client's frames no longer gather in the kernel
    and each small read is its own wake-up)."""

    __slots__ = ("items", "waiter")

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        self.items.append(item)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def _filled(self) -> None:
        while not self.items:
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None

    async def get(self) -> Any:
        await self._filled()
        return self.items.pop(0)

    async def get_all(self) -> list[Any]:
        """Every queued event (at least one, waiting for it)."""
        await self._filled()
        items, self.items = self.items, []
        return items

    def empty(self) -> bool:
        return not self.items


class FrameTaker(Protocol):
    """What takes frames in the protocol itself (:class:`api.reader.AckReader`)."""

    def take(self, data: bytes) -> bool: ...

    def flush(self) -> None: ...


class EdgeProtocol(WebSocketsSansIOProtocol):
    """uvicorn's ``websockets-sansio`` protocol offering itself as ``courier.wire``,
    and lighter per connection: see :class:`Inbox`; the handshake's request and
    response are dropped once sent.

    It also bounds what a peer can make it hold. A handshake that ``websockets``
    refuses (a header line over 8 KB, too many headers, no valid request) is answered
    in JSON (431, 414 or 400) and closed; uvicorn left it open without an answer.
    Protocol-level ping and pong frames count against the connection's rate limit
    (:meth:`Connection.control_frame`, bound by :meth:`Wire.bind`), and a peer that
    sends pings but never reads is dropped once the socket's unsent bytes pass
    ``max_buffered`` instead of having its pongs buffered without end."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = Inbox()  # type: ignore[assignment]  # uvicorn declares an asyncio.Queue
        self.control: Callable[[], bool] | None = None  # the rate limit of control frames
        self.max_buffered = 4 * 1024 * 1024
        self.taker: FrameTaker | None = None  # ack frames without an ASGI event

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.taker is not None:
            self.taker.flush()  # the acks of this read, together
        exc = self.conn.handshake_exc
        if exc is not None and not self.handshake_initiated and not self.transport.is_closing():
            self._refuse_handshake(exc)

    def send_receive_event_to_app(self) -> None:
        """A whole text frame goes to :attr:`taker` first while the app's reader waits
        with nothing queued (every frame before it is served: answers keep their order);
        whatever it does not take becomes a receive event, as in uvicorn."""
        taker = self.taker
        if (
            taker is not None
            and self.curr_msg_data_type == "text"
            and len(self.frames) == 1
            and not self.close_sent
        ):
            inbox: Inbox = self.queue  # type: ignore[assignment]  # set in __init__
            if not inbox.items and inbox.waiter is not None and taker.take(self.frames[0]):
                self.frames = []
                return
        super().send_receive_event_to_app()

    def _refuse_handshake(self, exc: Exception) -> None:
        name = type(exc).__name__
        if name in ("HeaderLineTooLong", "TooManyHeaders"):
            status, code = 431, "headers_too_large"
        elif name == "RequestLineTooLong":
            status, code = 414, "uri_too_long"
        else:
            status, code = 400, "bad_request"
        log.info("refused a WebSocket handshake: %s", exc)
        self.handshake_initiated = self.handshake_complete = self.close_sent = True
        self.transport.pause_reading()
        self.transport.write(error_response(status, code, f"WebSocket handshake refused: {exc}"))
        self.transport.close()

    def _control_allowed(self) -> bool:
        if self.transport.get_write_buffer_size() > self.max_buffered:
            log.info("dropped a client that does not read (%d bytes unsent)", self.max_buffered)
            self.abort()
            return False
        return self.control is None or self.control()

    def handle_ping(self) -> None:
        if self._control_allowed():
            super().handle_ping()

    def handle_pong(self, event: Frame) -> None:
        if self._control_allowed():
            super().handle_pong(event)

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope: Any = getattr(self, "scope", None)  # none when the handshake was refused
        if scope is not None:
            scope["extensions"][EXTENSION] = self

    async def receive_many(self) -> list[Any]:
        """Every ASGI receive event queued (at least one): the edge's reader takes the
        frames of one socket read in one wake-up, without uvicorn's and Starlette's
        ``receive`` per frame."""
        inbox: Inbox = self.queue  # type: ignore[assignment]  # set in __init__
        events = await inbox.get_all()
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()
        return events

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.accept" and self.handshake_complete:
            # uvicorn declares both as always set; nothing reads them after the handshake
            self.request = self.response = None  # type: ignore[assignment]

    def write_texts(self, frames: Sequence[str]) -> None:
        """Write text frames in one socket write. Raises ClientDisconnected when the
        connection is gone or closing."""
        if self.disconnected or self.close_sent:
            raise ClientDisconnected()
        conn = self.conn
        if conn.extensions or conn.state is not OPEN:  # compression: websockets frames it
            try:
                for text in frames:
                    conn.send_text(text.encode())
            except InvalidState:
                raise ClientDisconnected() from None
            self.transport.write(b"".join(conn.data_to_send()))
            return
        # A server's uncompressed text frame is a header and the bytes, unmasked.
        parts: list[bytes] = []
        for text in frames:
            data = text.encode()
            parts.append(_header(len(data)))
            parts.append(data)
        self.transport.write(b"".join(parts))

    def abort(self) -> None:
        """Drop the connection now, whatever is still buffered (the app then receives
        ``websocket.disconnect``)."""
        self.transport.abort()


class Flushable(Protocol):
    def flush_now(self) -> None: ...


class Flusher:
    """One socket write per connection per turn of the event loop, without a task
    switch: a connection with frames to write is marked (:meth:`mark`), and once the
    callbacks of this turn have run, every marked connection writes its whole outbox
    in one ``transport.write`` (:meth:`Connection.flush_now`). Its writer task wakes
    only for what this cannot do: a socket whose buffer is full, an outbox larger than
    a chunk, frames the writer is still writing, the close."""

    __slots__ = ("marked", "scheduled")

    def __init__(self) -> None:
        self.marked: dict[Flushable, None] = {}  # insertion-ordered, each once
        self.scheduled = False

    def mark(self, conn: Flushable) -> None:
        self.marked[conn] = None
        if not self.scheduled:
            self.scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self.scheduled = False
        marked, self.marked = self.marked, {}
        for conn in marked:
            conn.flush_now()


class Wire:
    """Writes through plain ASGI messages (one ``send`` per frame)."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.task = asyncio.current_task()  # the endpoint, cancelled by abort()
        self.cut = False  # abort() cancelled the endpoint: not a shutdown of the server

    @staticmethod
    def of(ws: WebSocket) -> Wire:
        proto = ws.scope.get("extensions", {}).get(EXTENSION)
        return FastWire(ws, proto) if proto is not None else Wire(ws)

    async def receive_many(self) -> list[Any]:
        """The client's next ASGI receive events (here: one at a time)."""
        return [await self.ws.receive()]

    def bind(self, control: Callable[[], bool], *, max_buffered: int) -> None:
        """The connection's limits for what the protocol handles by itself (control
        frames, the socket's buffer); plain ASGI offers no hook for them."""

    async def send(self, frames: Sequence[str]) -> None:
        for text in frames:
            async with asyncio.timeout(SEND_TIMEOUT):
                await self.ws.send_text(text)

    def write_now(self, frames: Sequence[str], chars: int) -> bool:
        """Write the frames (``chars`` characters) at once, without waiting; False
        when that is not possible here and :meth:`send` must do it (always, on plain
        ASGI). Raises ClientDisconnected when the connection is gone."""
        return False

    async def close(self, code: int, reason: str) -> None:
        async with asyncio.timeout(SEND_TIMEOUT):
            await self.ws.close(code, reason)

    def abort(self) -> None:
        """Stop serving the connection now (its endpoint cleans up and returns)."""
        if not self.cut and self.task is not None:
            self.cut = True
            self.task.cancel()


class FastWire(Wire):
    """Writes everything queued in one socket write, through :class:`EdgeProtocol`."""

    def __init__(self, ws: WebSocket, proto: EdgeProtocol) -> None:
        super().__init__(ws)
        self.proto = proto

    async def send(self, frames: Sequence[str]) -> None:
        """Write the frames in as few socket writes as the transport's buffer allows:
        chunks of about CHUNK_CHARS characters (a frame is never split), each once the
        transport is below its high-water mark again, so a long outbox of large frames
        never sits in the process's memory twice."""
        proto = self.proto
        writable = proto.writable
        start, n = 0, len(frames)
        while start < n:
            if not writable.is_set():  # the client's socket buffer is full: wait, a while
                async with asyncio.timeout(SEND_TIMEOUT):
                    await writable.wait()
            end, size = start + 1, len(frames[start])
            while end < n and size + len(frames[end]) <= CHUNK_CHARS:
                size += len(frames[end])
                end += 1
            proto.write_texts(frames if start == 0 and end == n else frames[start:end])
            start = end

    def write_now(self, frames: Sequence[str], chars: int) -> bool:
        """One socket write, when the transport is below its high-water mark and the
        frames fit in one chunk."""
        if chars > CHUNK_CHARS or not self.proto.writable.is_set():
            return False
        self.proto.write_texts(frames)
        return True

    async def receive_many(self) -> list[Any]:
        return await self.proto.receive_many()

    def bind(self, control: Callable[[], bool], *, max_buffered: int) -> None:
        self.proto.control = control
        self.proto.max_buffered = max_buffered

    def take_frames(self, taker: FrameTaker) -> None:
        """Let ``taker`` take text frames in the protocol (see :class:`EdgeProtocol`)."""
        self.proto.taker = taker

    def abort(self) -> None:
        self.proto.abort()
