"""Who is online: connections of users, per node, with a TTL refreshed by heartbeats.

Each node registers its connections (``connect.lua``), refreshes all of them in one
pipelined round per interval (``touch.lua``), and removes them on close
(``disconnect.lua``, which also hands unacknowledged messages back). A node that dies
stops refreshing: its entries fall out of the live window at once (dispatch ignores
them) and :meth:`Presence.sweep_dead_nodes` deletes what is left.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import redis.asyncio as aioredis

from . import clock
from .exceptions import TooManyConnections
from .keys import PRESENCE_TTL_FACTOR, Keyspace
from .members import check_id, node_member, parse_conn_member, parse_node_member
from .scripts import Scripts
from .text import text

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Conn:
    """One live connection as presence knows it."""

    user_id: str
    conn_id: str
    node_id: str


@dataclass(frozen=True, slots=True)
class Connect:
    """``connect.lua``: register one connection; answers the server time in ms."""

    SCRIPT: ClassVar[str] = "connect"
    prefix: str
    conn: Conn
    ttl_ms: int
    details: dict[str, str]  # ConnField.DEVICE, ConnField.ADDRESS ...
    max_per_user: int = 0  # live connections the user may have (0: any number)
    live_ms: int = 0  # a connection seen within it is live (the heartbeat timeout)

    def args(self) -> list[Any]:
        c = self.conn
        out: list[Any] = [
            c.user_id,
            c.conn_id,
            c.node_id,
            self.ttl_ms,
            self.max_per_user,
            self.live_ms,
        ]
        for k, v in self.details.items():
            out += (k, v)
        return out

    def parse(self, reply: Any) -> int:
        if reply in (b"full", "full"):
            raise TooManyConnections(
                f"user {self.conn.user_id!r} has {self.max_per_user} live connections already"
            )
        return int(reply)


@dataclass(frozen=True, slots=True)
class Touch:
    """``touch.lua``: refresh connections of one partition (ARGV: the ttl, then 3 per
    connection: user, connection, node); answers the ids of those presence had lost."""

    SCRIPT: ClassVar[str] = "touch"
    prefix: str
    ttl_ms: int
    conns: Sequence[Conn]

    def args(self) -> list[Any]:
        out: list[Any] = [self.ttl_ms]
        for c in self.conns:
            out += (c.user_id, c.conn_id, c.node_id)
        return out

    def parse(self, reply: Any) -> list[str]:
        return [text(c) for c in reply]


@dataclass(frozen=True, slots=True)
class Disconnect:
    """``disconnect.lua``: remove one connection, hand back its unacked messages when
    it was the user's last; answers how many went back."""

    SCRIPT: ClassVar[str] = "disconnect"
    prefix: str
    conn: Conn
    heartbeat_timeout_ms: int
    reason: str
    unacked: Sequence[str]

    def args(self) -> list[Any]:
        c = self.conn
        return [
            *(c.user_id, c.conn_id, c.node_id, self.heartbeat_timeout_ms, self.reason),
            *self.unacked,
        ]

    def parse(self, reply: Any) -> int:
        return int(reply)


class Presence:
    def __init__(
        self, client: aioredis.Redis, *, keyspace: Keyspace, heartbeat_timeout_ms: int
    ) -> None:
        self.redis = client
        self.keyspace = keyspace
        self.timeout_ms = heartbeat_timeout_ms
        self.ttl_ms = heartbeat_timeout_ms * PRESENCE_TTL_FACTOR
        self.scripts = Scripts(client)

    async def connect(self, conn: Conn, *, max_per_user: int = 0, **details: str) -> int:
        """Register a connection (details: ``ConnField`` names such as ``device``);
        returns the server time in ms. Raises :class:`TooManyConnections` (nothing
        registered) when the user has `max_per_user` live connections already."""
        check_id(conn.node_id, "node id")
        check_id(conn.conn_id, "connection id")
        # One round trip: the node's list of its connections first (what leave() and the
        # dead-node sweep clean up from; a member whose script then failed is harmless),
        # then connect.lua as a bare EVALSHA.
        pipe = self.redis.pipeline(transaction=False)
        pipe.sadd(self.keyspace.node_conns(conn.node_id), node_member(conn.user_id, conn.conn_id))
        call = Connect(
            self.keyspace.part_of_user(conn.user_id),
            conn,
            self.ttl_ms,
            details,
            max_per_user=max_per_user,
            live_ms=self.timeout_ms,
        )
        (now,) = await self.scripts.pipelined([self.scripts.call(call)], pipe=pipe)
        return call.parse(now)

    async def touch(self, conns: Iterable[Conn]) -> list[str]:
        """Refresh many connections: one script call per partition, one round trip.
        Returns the ids of connections whose presence had been lost (see touch.lua)."""
        by_part: dict[int, list[Conn]] = defaultdict(list)
        for c in conns:
            by_part[self.keyspace.partition_of(c.user_id)].append(c)
        if not by_part:
            return []
        calls = [
            Touch(self.keyspace.part(part), self.ttl_ms, cs) for part, cs in by_part.items()
        ]  # bare EVALSHAs: no SCRIPT EXISTS round trip first (see Scripts.pipelined)
        return [c for restored in await self.scripts.run_many(calls) for c in restored]

    async def disconnect(self, conn: Conn, *, unacked: Sequence[str], reason: str) -> int:
        """Remove a connection; returns how many unacked messages were handed back."""
        n = await self.scripts.run(
            Disconnect(
                self.keyspace.part_of_user(conn.user_id), conn, self.timeout_ms, reason, unacked
            )
        )
        await self.redis.srem(
            self.keyspace.node_conns(conn.node_id), node_member(conn.user_id, conn.conn_id)
        )
        return n

    async def heartbeat_node(self, node_id: str) -> None:
        await self.redis.zadd(self.keyspace.nodes, {node_id: await self._now_ms()})

    async def leave(self, node_id: str) -> None:
        """A node shuts down: forget what its connections left behind (normally
        nothing: each closed connection removed itself), then the node."""
        key = self.keyspace.node_conns(node_id)
        for raw in await self.redis.smembers(key):
            user, conn = parse_node_member(raw)
            await self.disconnect(Conn(user, conn, node_id), unacked=(), reason="node_left")
        await self.redis.delete(key)
        await self.redis.zrem(self.keyspace.nodes, node_id)

    async def sweep_dead_nodes(self) -> list[str]:
        """Delete presence left by nodes that stopped refreshing; returns their ids."""
        cutoff = await self._now_ms() - self.timeout_ms
        dead = [text(n) for n in await self.redis.zrangebyscore(self.keyspace.nodes, 0, cutoff)]
        for node in dead:
            key = self.keyspace.node_conns(node)
            members = await self.redis.smembers(key)
            for raw in members:
                user, conn = parse_node_member(raw)
                await self.disconnect(Conn(user, conn, node), unacked=(), reason="node_dead")
            await self.redis.delete(key)
            await self.redis.zrem(self.keyspace.nodes, node)
            log.info("swept dead node %s (%d connections)", node, len(members))
        return dead

    async def online(self, user_id: str) -> list[Conn]:
        key = self.keyspace.user(user_id, "conns")
        cutoff = await self._now_ms() - self.timeout_ms
        out = []
        for raw in await self.redis.zrangebyscore(key, cutoff, "+inf"):
            node, conn = parse_conn_member(text(raw))
            out.append(Conn(user_id, conn, node))
        return out

    async def _now_ms(self) -> int:
        return await clock.server_ms(self.redis)
