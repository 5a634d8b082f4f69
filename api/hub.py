"""This node's live connections and the fan-out of frames to them.

The hub only tracks connections and hands them frames; it does no I/O of its own
(centrifuge's ``hub.go``). The background work around it, the pub/sub listener
that feeds it, presence refresh, heartbeat timeouts and the dead-node sweep, is
:class:`api.node.Node`'s.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence

from delivery.metrics import CONNECTIONS, FRAMES_OUT

from .connection import Connection

MESSAGE_FRAMES = FRAMES_OUT.labels("message")  # once, not a label lookup per message


class Hub:
    def __init__(self, *, max_connections: int) -> None:
        self.max_connections = max_connections
        self.conns: dict[str, Connection] = {}
        self.by_user: dict[str, set[Connection]] = defaultdict(set)
        self.emptied = asyncio.Event()  # set whenever the last connection is gone

    # -- registry -------------------------------------------------------------------------
    @property
    def full(self) -> bool:
        return len(self.conns) >= self.max_connections

    def add(self, conn: Connection) -> None:
        self.conns[conn.conn_id] = conn
        self.by_user[conn.user_id].add(conn)
        CONNECTIONS.set(len(self.conns))

    def remove(self, conn: Connection) -> None:
        self.conns.pop(conn.conn_id, None)
        users = self.by_user.get(conn.user_id)
        if users is not None:
            users.discard(conn)
            if not users:
                del self.by_user[conn.user_id]
        CONNECTIONS.set(len(self.conns))
        if not self.conns:
            self.emptied.set()

    def open_connections(self) -> list[Connection]:
        """A snapshot of the connections still open."""
        return [c for c in self.conns.values() if c.is_open]

    def others_of(self, conn: Connection) -> list[Connection]:
        """The user's other connections on this node."""
        conns = self.by_user.get(conn.user_id, ())
        if len(conns) < 2:  # the usual case, on every ack: no list to build
            return []
        return [c for c in conns if c is not conn]

    # -- fan-out --------------------------------------------------------------------------
    async def local_sink(
        self, user_id: str, conn_ids: Sequence[str], frame: bytes, message_id: str
    ) -> int:
        """Push a message frame to this node's named connections of a user (the
        transport's local path, and the node's channel)."""
        text = frame.decode()
        n = 0
        for cid in conn_ids:
            conn = self.conns.get(cid)
            if conn is not None and conn.user_id == user_id and conn.offer(text, message_id):
                n += 1
        if n:
            MESSAGE_FRAMES.inc(n)
        return n

    def send_to_user(self, user_id: str, frame: str) -> int:
        """A live frame (not a stored message) to every local connection of a user."""
        return sum(1 for c in list(self.by_user.get(user_id, ())) if c.offer(frame))

    def send_to_topic(self, topic: str, frame: str, *, owner: str | None = None) -> int:
        """A live topic frame to subscribed connections (only the owner's, for a task)."""
        conns = self.conns.values() if owner is None else self.by_user.get(owner, ())
        return sum(1 for c in list(conns) if topic in c.topics and c.offer(frame))

    def send_to_all(self, frame: str) -> int:
        return sum(1 for c in list(self.conns.values()) if c.offer(frame))
