"""This node's live connections: local fan-out, the node's pub/sub channel,
presence refresh, heartbeat timeouts and the dead-node sweep."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import orjson

from consumers.resilience import forever
from delivery.exceptions import NotFound
from delivery.keys import BROADCAST_REPORT_TTL_S
from delivery.metrics import CONNECTIONS, FRAMES_OUT
from delivery.presence import Conn
from delivery.transport import decode_envelope

from .acks import AckBatcher
from .connection import Connection, State
from .frames import FrameError
from .runtime import Runtime

log = logging.getLogger(__name__)
MESSAGE_FRAMES = FRAMES_OUT.labels("message")  # once, not a label lookup per message


class Hub:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        s = runtime.settings
        self.max_connections = s.max_connections
        self.heartbeat_timeout = s.heartbeat_timeout_seconds
        self.refresh_every = min(s.heartbeat_interval_seconds, s.heartbeat_timeout_seconds / 3)
        self.conns: dict[str, Connection] = {}
        self.by_user: dict[str, set[Connection]] = defaultdict(set)
        self.stop_event = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []
        self.accepting = True
        self._drains: set[asyncio.Task[None]] = set()
        self._listened = False
        self.emptied = asyncio.Event()  # set whenever the last connection is gone
        self.acks = AckBatcher(runtime.store)  # ack frames of one loop turn, one round trip

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

    def online_users(self) -> int:
        return len(self.by_user)

    # -- fan-out --------------------------------------------------------------------------
    async def local_sink(
        self, user_id: str, conn_ids: Sequence[str], frame: bytes, message_id: str
    ) -> int:
        """Push a message frame to this node's named connections of a user."""
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
        n = sum(1 for c in list(self.by_user.get(user_id, ())) if c.offer(frame))
        return n

    def send_to_topic(self, topic: str, frame: str, *, owner: str | None = None) -> int:
        """A live topic frame to subscribed connections (only the owner's, for a task)."""
        conns = self.conns.values() if owner is None else self.by_user.get(owner, ())
        return sum(1 for c in list(conns) if topic in c.topics and c.offer(frame))

    def send_to_all(self, frame: str) -> int:
        return sum(1 for c in list(self.conns.values()) if c.offer(frame))

    # -- background loops -----------------------------------------------------------------
    async def start(self) -> None:
        await self.rt.presence.heartbeat_node(self.rt.node_id)
        self.stop_event.clear()
        self.tasks = [
            asyncio.create_task(forever("node-listener", self._listen, self.stop_event)),
            asyncio.create_task(forever("presence", self._refresh, self.stop_event)),
        ]

    async def _listen(self) -> float:
        """This node's channel (message frames), live topic frames and broadcasts."""
        ks = self.rt.keyspace
        own = ks.node_channel(self.rt.node_id)
        async with self.rt.redis.pubsub() as ps:
            await ps.subscribe(own, ks.topics_channel, ks.broadcast_channel)
            log.info("node %s listening on %s", self.rt.node_id, own)
            if self._listened:  # back after an outage: frames published meanwhile were
                for conn in list(self.conns.values()):  # retried or parked; drain them
                    if conn.state is State.OPEN:
                        self.drain_again(conn)
            self._listened = True
            while not self.stop_event.is_set():
                msg = await ps.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if msg is None:
                    continue
                channel = msg["channel"].decode()
                if channel == own:
                    user, conns, frame, mid = decode_envelope(msg["data"])
                    await self.local_sink(user, conns, frame, mid)
                elif channel == ks.topics_channel:
                    env = orjson.loads(msg["data"])
                    self.send_to_topic(
                        env["t"], orjson.dumps(env["f"]).decode(), owner=env.get("o")
                    )
                else:
                    await self._broadcast(orjson.loads(msg["data"]))
        return 0.0

    async def _broadcast(self, env: dict[str, Any]) -> None:
        frame = orjson.dumps(env["f"]).decode()
        n = (
            self.send_to_all(frame)
            if env.get("u") is None
            else sum(self.send_to_user(u, frame) for u in env["u"])
        )
        FRAMES_OUT.labels("broadcast").inc(n)
        report = self.rt.keyspace.broadcast_report(env["id"])
        async with self.rt.redis.pipeline(transaction=True) as pipe:
            pipe.hincrby(report, "nodes", 1)
            pipe.hincrby(report, "connections", n)
            pipe.expire(report, BROADCAST_REPORT_TTL_S)
            await pipe.execute()

    async def on_subscribe(self, conn: Connection, topic: str) -> str | None:
        """Task topics are their owner's: refuse others; return the task's current
        state as a first frame so a late subscriber catches up."""
        if not topic.startswith("task:"):
            return None
        task_id = topic[5:]
        try:
            task = await self.rt.producer.get_task(task_id, conn.user_id)
        except NotFound:
            raise FrameError(
                "unknown_task", f"no task {task_id} of this user", topic=topic
            ) from None
        return orjson.dumps({"type": "topic", "topic": topic, "data": task}).decode()

    async def _refresh(self) -> float:
        """Refresh presence of every local connection; close silent ones (4408)."""
        now = time.monotonic()
        for conn in list(self.conns.values()):
            if now - conn.last_seen > self.heartbeat_timeout:
                conn.request_close(4408, "heartbeat missed")
        snapshot = {
            c.conn_id: Conn(c.user_id, c.conn_id, c.node_id)
            for c in self.conns.values()
            if c.state is State.OPEN
        }
        restored = await self.rt.presence.touch(snapshot.values())
        for cid in restored:
            back = self.conns.get(cid)
            if back is not None and back.state is State.OPEN:
                log.warning("presence of %s was lost; draining it again", cid)
                self.drain_again(back)
            else:  # it closed while we refreshed it: remove the ghost we re-added
                await self.rt.presence.disconnect(snapshot[cid], unacked=(), reason="ghost")
        for conn in list(self.conns.values()):
            if conn.needs_drain and conn.state is State.OPEN:  # a drain failed earlier
                conn.needs_drain = False
                self.drain_again(conn)
        await self.rt.presence.heartbeat_node(self.rt.node_id)
        await self.rt.presence.sweep_dead_nodes()
        return self.refresh_every

    async def close_all(self, code: int, reason: str, *, within: float = 5.0) -> int:
        """Refuse new connections, close every socket with `code` and wait (at most
        `within` s) until their endpoints have handed their unacked messages back."""
        self.accepting = False
        n = len(self.conns)
        for conn in list(self.conns.values()):
            conn.request_close(code, reason)
        if self.conns:
            self.emptied.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.emptied.wait(), within)
        if n:
            log.info("closed %d connections (%d); %d left", n, code, len(self.conns))
        return n

    def drain_again(self, conn: Connection) -> None:
        """Drain a live connection again: its presence had been lost (messages were
        parked meanwhile) or its last drain failed."""
        from .ws import drain  # the endpoint module imports this one

        task = asyncio.create_task(drain(self, conn))
        self._drains.add(task)
        task.add_done_callback(self._drains.discard)

    async def stop(self) -> None:
        """Graceful shutdown: close every socket with 1001 (their endpoints hand the
        unacked messages back), then stop the loops and leave the node registry."""
        await self.close_all(1001, "server shutting down")
        self.stop_event.set()
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        try:
            await self.rt.presence.leave(self.rt.node_id)
        except Exception:  # Redis may be gone at shutdown; presence then expires
            log.warning("could not leave the node registry", exc_info=True)
