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

import redis.asyncio as aioredis

from .keys import Keyspace
from .message import text as _s
from .scripts import Scripts

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Conn:
    """One live connection as presence knows it."""

    user_id: str
    conn_id: str
    node_id: str


class Presence:
    def __init__(
        self, client: aioredis.Redis, *, keyspace: Keyspace, heartbeat_timeout_ms: int
    ) -> None:
        self.redis = client
        self.keyspace = keyspace
        self.timeout_ms = heartbeat_timeout_ms
        self.ttl_ms = heartbeat_timeout_ms * 2
        self.scripts = Scripts(client)

    async def connect(self, conn: Conn, **details: str) -> int:
        flat: list[str] = []
        for k, v in details.items():
            flat += [k, v]
        # One round trip: the node's list of its connections first (what leave() and the
        # dead-node sweep clean up from; a member whose script then failed is harmless),
        # then connect.lua as a bare EVALSHA.
        pipe = self.redis.pipeline(transaction=False)
        pipe.sadd(self.keyspace.node_conns(conn.node_id), self._member(conn))
        calls = [
            (
                self.scripts.connect,
                [self.keyspace.part_of_user(conn.user_id)],
                [conn.user_id, conn.conn_id, conn.node_id, self.ttl_ms, *flat],
            )
        ]
        (now,) = await self.scripts.pipelined(calls, pipe=pipe)
        return int(now)

    async def touch(self, conns: Iterable[Conn]) -> list[str]:
        """Refresh many connections: one script call per partition, one round trip.
        Returns the ids of connections whose presence had been lost (see touch.lua)."""
        by_part: dict[int, list[str]] = defaultdict(list)
        for c in conns:
            by_part[self.keyspace.partition_of(c.user_id)] += [c.user_id, c.conn_id, c.node_id]
        if not by_part:
            return []
        calls = [
            (self.scripts.touch, [self.keyspace.part(part)], [self.ttl_ms, *flat])
            for part, flat in by_part.items()
        ]  # bare EVALSHAs: no SCRIPT EXISTS round trip first (see Scripts.pipelined)
        return [c.decode() for res in await self.scripts.pipelined(calls) for c in res]

    async def disconnect(self, conn: Conn, *, unacked: Sequence[str], reason: str) -> int:
        """Remove a connection; returns how many unacked messages were handed back."""
        n = await self.scripts.disconnect(
            keys=[self.keyspace.part_of_user(conn.user_id)],
            args=[conn.user_id, conn.conn_id, conn.node_id, self.timeout_ms, reason, *unacked],
        )
        await self.redis.srem(self.keyspace.node_conns(conn.node_id), self._member(conn))
        return int(n)

    async def heartbeat_node(self, node_id: str) -> None:
        await self.redis.zadd(self.keyspace.nodes, {node_id: await self._now_ms()})

    async def leave(self, node_id: str) -> None:
        """A node shuts down: forget what its connections left behind (normally
        nothing: each closed connection removed itself), then the node."""
        key = self.keyspace.node_conns(node_id)
        for raw in await self.redis.smembers(key):
            user, _, conn = _s(raw).rpartition("|")
            await self.disconnect(Conn(user, conn, node_id), unacked=(), reason="node_left")
        await self.redis.delete(key)
        await self.redis.zrem(self.keyspace.nodes, node_id)

    async def sweep_dead_nodes(self) -> list[str]:
        """Delete presence left by nodes that stopped refreshing; returns their ids."""
        cutoff = await self._now_ms() - self.timeout_ms
        dead = [_s(n) for n in await self.redis.zrangebyscore(self.keyspace.nodes, 0, cutoff)]
        for node in dead:
            key = self.keyspace.node_conns(node)
            members = await self.redis.smembers(key)
            for raw in members:
                user, _, conn = _s(raw).rpartition("|")  # user ids may hold "|"
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
            node, _, conn = _s(raw).partition("|")
            out.append(Conn(user_id, conn, node))
        return out

    async def _now_ms(self) -> int:
        sec, usec = await self.redis.time()
        return int(sec) * 1000 + int(usec) // 1000

    @staticmethod
    def _member(conn: Conn) -> str:
        return f"{conn.user_id}|{conn.conn_id}"
