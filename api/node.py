"""This edge node's background work around its :class:`~api.hub.Hub` (centrifuge's
``node.go``): the pub/sub listener that feeds the hub (this node's channel, live
topic frames, broadcasts), the presence refresh with heartbeat timeouts and the
dead-node sweep, the drains it starts again, the ack batcher, the close of
connections whose token expired (:mod:`api.expiry`), and start, stop and the graceful
close of every connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

import orjson
from redis.exceptions import ConnectionError as RedisConnectionError

from consumers.resilience import forever, transient
from delivery import clock
from delivery.keys import BROADCAST_REPORT_TTL_S
from delivery.metrics import FRAMES_OUT
from delivery.presence import Conn
from delivery.redis_clients import node_pubsub, node_subscribe
from delivery.totals import Totals
from delivery.transport import decode_envelope

from . import control
from .acks import AckBatcher
from .auth import Verifier
from .connection import Connection
from .drain import drain
from .expiry import Expiries
from .hub import Hub
from .protocol import CloseCode
from .runtime import Runtime
from .wire import Flusher

log = logging.getLogger(__name__)


class Node:
    def __init__(self, runtime: Runtime, hub: Hub, verifier: Verifier | None = None) -> None:
        self.rt = runtime
        self.hub = hub
        self.verifier = verifier or Verifier(runtime.settings)  # also for `refresh` frames
        self.expiries = Expiries(hub)  # connections closed when their token expires
        s = runtime.settings
        self.heartbeat_timeout = s.heartbeat_timeout_seconds
        self.refresh_every = min(s.heartbeat_interval_seconds, s.heartbeat_timeout_seconds / 3)
        self.acks = AckBatcher(runtime.store)  # ack frames of one loop turn, one round trip
        self.flusher = Flusher()  # one socket write per connection and loop turn
        self.accepting = True  # False once the node closes its connections
        self.stop_event = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []
        self._drains: set[asyncio.Task[None]] = set()
        self._listened = False
        # An edge without consumers publishes its own totals (the consumers do otherwise)
        self.totals: Totals | None = None
        if runtime.consumers is None:
            self.totals = Totals(runtime.redis, keyspace=runtime.keyspace, process=runtime.node_id)

    async def start(self) -> None:
        await self.rt.presence.heartbeat_node(self.rt.node_id)
        self.stop_event.clear()
        self.tasks = [
            asyncio.create_task(forever("node-listener", self._listen, self.stop_event)),
            asyncio.create_task(forever("presence", self.refresh, self.stop_event)),
        ]
        if self.totals is not None:
            await self.totals.publish()  # counted from the start
            self.tasks.append(
                asyncio.create_task(forever("totals", self.totals.publish, self.stop_event))
            )

    # -- pub/sub listener -----------------------------------------------------------------
    async def _listen(self) -> float:
        """This node's channel (message frames), live topic frames, broadcasts and
        operators' orders (api/control.py). On Redis Cluster this node's own channels
        are shard channels on the primary serving the node id's slot, read by a second
        connection beside the deployment-wide one (delivery/redis_clients.py)."""
        ks = self.rt.keyspace
        own = ks.node_channel(self.rt.node_id)
        orders = ks.control_channel(self.rt.node_id)
        wide = (ks.topics_channel, ks.broadcast_channel)
        if not ks.sharded:
            async with self.rt.redis.pubsub() as ps:
                await ps.subscribe(own, *wide, orders)
                self._listening(own)
                await self._read(ps)
            return 0.0
        async with (
            self.rt.redis.pubsub() as ps,
            node_pubsub(self.rt.redis, own, sharded=True) as shard,
        ):
            await ps.subscribe(*wide)
            await node_subscribe(shard, own, orders, sharded=True)
            self._listening(own)
            readers = [asyncio.create_task(self._read(ps)), asyncio.create_task(self._read(shard))]
            try:
                done, _ = await asyncio.wait(readers, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for r in readers:
                    r.cancel()
                await asyncio.gather(*readers, return_exceptions=True)
            for r in done:
                r.result()  # the error that ended it, if any
        return 0.0

    def _listening(self, own: str) -> None:
        log.info("node %s listening on %s", self.rt.node_id, own)
        if self._listened:  # back after an outage: frames published meanwhile were
            for conn in self.hub.open_connections():  # retried or parked; drain them
                self.drain_again(conn)
        self._listened = True

    async def _read(self, ps: Any) -> None:
        """Hand what one pub/sub connection hears to the hub until the node stops. A
        shard channel whose slot moved (resharding, failover) is unsubscribed by the
        server: a ConnectionError, so that the listener subscribes again where the slot
        is now."""
        while not self.stop_event.is_set():
            msg = await ps.get_message(timeout=1.0)
            if msg is None:
                continue
            kind = msg["type"]
            if kind in ("message", "smessage"):
                await self._heard(msg["channel"].decode(), msg["data"])
            elif kind == "sunsubscribe":
                raise RedisConnectionError(f"shard channel {msg['channel']!r} moved")

    async def _heard(self, channel: str, data: bytes) -> None:
        ks = self.rt.keyspace
        if channel == ks.topics_channel:
            env = orjson.loads(data)
            self.hub.send_to_topic(env["t"], orjson.dumps(env["f"]).decode(), owner=env.get("o"))
        elif channel == ks.broadcast_channel:
            await self._broadcast(orjson.loads(data))
        elif channel == ks.control_channel(self.rt.node_id):
            order = control.Disconnect.decode(data)
            if order is not None:
                order.apply(self.hub)
        else:  # this node's own channel
            user, conns, frame, mid = decode_envelope(data)
            await self.hub.local_sink(user, conns, frame, mid)

    async def _broadcast(self, env: dict[str, Any]) -> None:
        """Hand a broadcast to the local connections and add them to its report."""
        frame = orjson.dumps(env["f"]).decode()
        users = env.get("u")
        hub = self.hub
        n = (
            hub.send_to_all(frame)
            if users is None
            else sum(hub.send_to_user(u, frame) for u in users)
        )
        FRAMES_OUT.labels("broadcast").inc(n)
        try:
            await self._report(env["id"], n)
        except Exception as e:  # the frames went out; only the count is lost
            if not transient(e):
                raise
            log.warning("broadcast %s: could not count its connections (%s)", env["id"], e)

    async def _report(self, broadcast_id: str, n: int) -> None:
        report = self.rt.keyspace.broadcast_report(broadcast_id)
        async with self.rt.redis.pipeline(transaction=True) as pipe:
            pipe.hincrby(report, "nodes", 1)
            pipe.hincrby(report, "connections", n)
            pipe.expire(report, BROADCAST_REPORT_TTL_S)
            await pipe.execute()

    # -- presence -------------------------------------------------------------------------
    async def refresh(self) -> float:
        """One pass of the presence loop: close silent connections (4408), refresh the
        presence of the open ones (draining again those whose presence was lost), retry
        failed drains, then this node's heartbeat and the sweep of dead nodes. Returns
        when to run again."""
        self._close_silent()
        await self._touch()
        for conn in self.hub.open_connections():
            if conn.needs_drain:  # a drain failed earlier
                conn.needs_drain = False
                self.drain_again(conn)
        await self.rt.presence.heartbeat_node(self.rt.node_id)
        await self.rt.presence.sweep_dead_nodes()
        return self.refresh_every

    def _close_silent(self) -> None:
        now = clock.monotonic()
        for conn in list(self.hub.conns.values()):
            if now - conn.last_seen > self.heartbeat_timeout:
                conn.request_close(CloseCode.HEARTBEAT_MISSED)

    async def _touch(self) -> None:
        snapshot = {
            c.conn_id: Conn(c.user_id, c.conn_id, c.node_id) for c in self.hub.open_connections()
        }
        restored = await self.rt.presence.touch(snapshot.values())
        for cid in restored:
            back = self.hub.conns.get(cid)
            if back is not None and back.is_open:
                log.warning("presence of %s was lost; draining it again", cid)
                self.drain_again(back)
            else:  # it closed while we refreshed it: remove the ghost we re-added
                await self.rt.presence.disconnect(snapshot[cid], unacked=(), reason="ghost")

    def drain_again(self, conn: Connection) -> None:
        """Drain a live connection again: its presence had been lost (messages were
        parked meanwhile) or its last drain failed."""
        self.spawn(drain(self.rt, conn))

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` in the background, kept until it ends (drains, acks retried)."""
        task = asyncio.create_task(work)
        self._drains.add(task)
        task.add_done_callback(self._drains.discard)

    # -- shutdown -------------------------------------------------------------------------
    async def close_all(self, code: int, reason: str | None = None, *, within: float = 5.0) -> int:
        """Refuse new connections, close every socket with `code` and wait (at most
        `within` s) until their endpoints have handed their unacked messages back."""
        self.accepting = False
        hub = self.hub
        n = len(hub.conns)
        for conn in list(hub.conns.values()):
            conn.request_close(code, reason)
        if hub.conns:
            hub.emptied.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(hub.emptied.wait(), within)
        if n:
            log.info("closed %d connections (%d); %d left", n, code, len(hub.conns))
        return n

    async def stop(self) -> None:
        """Graceful shutdown: close every socket with 1001 (their endpoints hand the
        unacked messages back), then stop the loops and leave the node registry."""
        await self.close_all(CloseCode.GOING_AWAY)
        self.expiries.stop()
        self.stop_event.set()
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.totals is not None:
            await self.totals.leave()
        try:
            await self.rt.presence.leave(self.rt.node_id)
        except Exception:  # Redis may be gone at shutdown; presence then expires
            log.warning("could not leave the node registry", exc_info=True)
