"""Ack frames taken by the WebSocket protocol itself, without an ASGI event each.

Most frames a client sends are acks. On the usual path each one is a receive event:
queued by uvicorn's protocol, the socket paused, the endpoint's reader woken, the
event planned (:mod:`api.inbound`), the reader resumed again after Redis answered. An
:class:`AckReader` bound to a connection's :class:`~api.wire.EdgeProtocol` takes a
valid ``ack`` frame in ``data_received`` instead: it is parsed and counted against the
rate limit there, the ids of one socket read go to the node's
:class:`~api.acks.AckBatcher` together (one :class:`~delivery.store.AckRequest`), and
Redis's answer settles them from a callback (:func:`api.frames.settle`).

The protocol offers a frame only while the endpoint's reader waits with nothing
queued, so every frame before it has been served; anything that is not a valid ack
within the limits (another type, bad JSON, a frame too large, over the rate limit, a
closing connection) goes the usual way, where it is answered or closes the
connection. The reader, woken by such a frame, first waits for the acks taken here to
be answered (:meth:`AckReader.settled`): answers keep the order of the frames.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from consumers.resilience import retrying, transient
from delivery.store import AckRequest

from .acks import Codes
from .frames import FrameError, ack, ack_ids, parse, settle
from .protocol import MAX_ACK_IDS, ClientFrame, CloseCode

if TYPE_CHECKING:
    from .connection import Connection
    from .node import Node

log = logging.getLogger(__name__)

ACK_MARK = b'"ack"'  # no ack frame without it: other frames are not parsed twice


class AckReader:
    __slots__ = ("_settled", "conn", "ids", "in_flight", "max_bytes", "node")

    def __init__(self, node: Node, conn: Connection, *, max_bytes: int) -> None:
        self.node = node
        self.conn = conn
        self.max_bytes = max_bytes
        self.ids: list[str] = []  # of the ack frames of this socket read
        self.in_flight = 0  # requests sent to the batcher and not answered yet
        self._settled: asyncio.Future[None] | None = None

    def take(self, data: bytes) -> bool:
        """Take a text frame's bytes if it is a valid ack frame within the limits;
        False leaves it to the endpoint's reader."""
        conn = self.conn
        if len(data) > self.max_bytes or ACK_MARK not in data or not conn.is_open:
            return False
        try:
            frame = parse(data.decode())
            if frame["type"] != ClientFrame.ACK:
                return False
            ids = ack_ids(frame)
        except (FrameError, UnicodeDecodeError):
            return False
        if not conn.bucket.take():
            return False  # the reader's plan closes the connection (4429)
        conn.seen()
        if len(self.ids) + len(ids) > MAX_ACK_IDS:
            self.flush()
        self.ids += ids
        return True

    def flush(self) -> None:
        """Send the ids taken so far (the end of a socket read)."""
        if not self.ids:
            return
        ids, self.ids = self.ids, []
        conn = self.conn
        self.in_flight += 1
        self.node.acks.submit(
            AckRequest(conn.user_id, conn.conn_id, conn.node_id, ids),
            lambda result: self._answered(ids, result),
        )

    def _answered(self, ids: list[str], result: Codes | Exception) -> None:
        try:
            if not isinstance(result, Exception):
                settle(self.node, self.conn, ids, result)
            elif transient(result):
                self.node.spawn(ack_later(self.node, self.conn, ids))  # the client acked
            else:
                log.warning(
                    "connection %s failed",
                    self.conn.conn_id,
                    exc_info=result,
                    extra=self.conn.log_ids(),
                )
                self.conn.request_close(CloseCode.INTERNAL_ERROR)
        finally:
            self.in_flight -= 1
            if not self.in_flight and self._settled is not None:
                settled, self._settled = self._settled, None
                if not settled.done():
                    settled.set_result(None)

    async def settled(self) -> None:
        """Until every ack taken here has been answered."""
        while self.in_flight:
            if self._settled is None:
                self._settled = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._settled)


async def ack_later(node: Node, conn: Connection, ids: list[str]) -> None:
    """Acks Redis could not take (full, failing over): retried until it takes them,
    even after the connection closed, so that a message a device acked while Redis was
    full ends delivered."""
    try:
        await retrying("ack", lambda: ack(node, conn, ids))
    except Exception:
        log.warning("acks of %s lost: %s", conn.conn_id, ids[:5], exc_info=True)
