"""Operators' orders to the edge nodes (centrifuge's ``disconnect`` control command).

An order goes to each node that holds the connections it names, on that node's control
channel (``{prefix}:control:{node}``), or straight to the hub when the node is this
process. Today there is one order, ``disconnect``: close a user's connections (all, or
the listed ones) with :attr:`~api.protocol.CloseCode.DISCONNECTED` (4409); each one
then leaves the usual way (its unacked messages are handed back).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from delivery.presence import Conn
from delivery.redis_clients import node_publish

from .hub import Hub
from .protocol import CloseCode
from .runtime import Runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Disconnect:
    """Close these connections of a user (``conn_ids`` empty: every one on the node)."""

    user_id: str
    conn_ids: tuple[str, ...]
    by: str

    def encode(self) -> bytes:
        return orjson.dumps(
            {"order": "disconnect", "u": self.user_id, "c": self.conn_ids, "by": self.by}
        )

    @classmethod
    def decode(cls, raw: bytes) -> Disconnect | None:
        env: Any = orjson.loads(raw)
        if not isinstance(env, dict) or env.get("order") != "disconnect":
            return None
        return cls(str(env["u"]), tuple(str(c) for c in env.get("c") or ()), str(env.get("by")))

    def apply(self, hub: Hub) -> int:
        """Ask this node's matching connections to close; how many were asked."""
        conns = [
            c
            for c in list(hub.by_user.get(self.user_id, ()))
            if c.is_open and (not self.conn_ids or c.conn_id in self.conn_ids)
        ]
        for c in conns:
            c.request_close(CloseCode.DISCONNECTED)
        if conns:
            log.info(
                "closing %d connections of %s (ordered by %s)",
                len(conns),
                self.user_id,
                self.by,
                extra={"user_id": self.user_id},
            )
        return len(conns)


@dataclass(frozen=True)
class Sent:
    """What a disconnect order reached: connections presence listed, per node, and
    the nodes that did not hear it (gone: their connections are swept with them)."""

    connections: dict[str, int]
    unreachable: list[str]

    @property
    def total(self) -> int:
        return sum(n for node, n in self.connections.items() if node not in self.unreachable)


async def disconnect(
    rt: Runtime, hub: Hub | None, user_id: str, *, conn_id: str | None, by: str
) -> Sent:
    """Send a disconnect order to each node that holds connections of the user (as
    presence lists them); this node's are closed here."""
    live: Sequence[Conn] = await rt.presence.online(user_id)
    if conn_id is not None:
        live = [c for c in live if c.conn_id == conn_id]
    by_node: dict[str, list[str]] = defaultdict(list)
    for c in live:
        by_node[c.node_id].append(c.conn_id)
    unreachable = []
    for node, conns in by_node.items():
        order = Disconnect(user_id, tuple(conns), by)
        if node == rt.node_id and hub is not None:
            order.apply(hub)
            continue
        channel = rt.keyspace.control_channel(node)
        heard = await node_publish(rt.redis, channel, order.encode(), sharded=rt.keyspace.sharded)
        if not heard:
            unreachable.append(node)
    return Sent({n: len(c) for n, c in by_node.items()}, unreachable)
