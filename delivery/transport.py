"""How a dispatched message reaches the nodes that hold its user's sockets.

The consumer that dispatched a message knows its targets (node, connection). Frames
for connections on this very process go straight to the local sink; frames for other
nodes are PUBLISHed on that node's channel (SPUBLISH on Redis Cluster: a shard channel
in the slot of the node id, see delivery/redis_clients.py). PUBLISH answers how many
subscribers got it: zero means the node is gone, and the message is retried at once instead of
waiting for its ack timeout. A node also counts as gone once its heartbeat is older
than the heartbeat timeout, subscribed or not (a frozen process keeps its
subscription): its messages are retried at once too, and go to the user's other
connections or park. Pub/sub may still lose a frame (a node dying just after
receiving it); the ack timeout covers that, so delivery stays at least once.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import orjson
import redis.asyncio as aioredis

from .calls import Push
from .keys import Keyspace
from .redis_clients import is_cluster, node_publish

log = logging.getLogger(__name__)

LocalSink = Callable[[str, Sequence[str], bytes, str], Awaitable[int]]
"""(user, connection ids, frame, message id) -> how many local connections took it."""


class Transport(Protocol):
    async def push(self, pushes: Sequence[Push]) -> list[Push]:
        """Send each push to its targets; return those that reached no node."""
        ...


def encode_envelope(user_id: str, conns: Sequence[str], frame: bytes, message_id: str) -> bytes:
    return orjson.dumps(
        {"u": user_id, "c": list(conns), "m": message_id, "f": orjson.Fragment(frame)}
    )


def decode_envelope(raw: bytes) -> tuple[str, list[str], bytes, str]:
    env = orjson.loads(raw)
    return env["u"], env["c"], orjson.dumps(env["f"]), env["m"]


class RedisTransport:
    """Local sink for this node's connections, PUBLISH for the others."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        keyspace: Keyspace,
        node_id: str | None = None,
        local: LocalSink | None = None,
        heartbeat_timeout_ms: int | None = None,
    ) -> None:
        self.redis = client
        self.keyspace = keyspace
        self.node_id = node_id
        self.local = local
        self.heartbeat_timeout_ms = heartbeat_timeout_ms
        # a cluster pipeline cannot carry TIME (no key): there PUBLISH's count decides
        self._cluster = is_cluster(client)

    async def push(self, pushes: Sequence[Push]) -> list[Push]:
        reached: dict[str, int] = {}
        remote: list[tuple[str, str, bytes]] = []  # (message id, node, envelope)
        for p in pushes:
            frame = p.frame()
            reached[p.id] = 0
            for node, conns in _group(p.targets):
                if node == self.node_id and self.local is not None:
                    reached[p.id] += await self.local(p.user_id, conns, frame, p.id)
                else:
                    remote.append((p.id, node, encode_envelope(p.user_id, conns, frame, p.id)))
        if remote:
            pipe = self.redis.pipeline(transaction=False)
            for _, node, env in remote:
                channel = self.keyspace.node_channel(node)
                node_publish(pipe, channel, env, sharded=self.keyspace.sharded)
            nodes = sorted({node for _, node, _ in remote})
            if self.heartbeat_timeout_ms is not None and not self._cluster:  # same trip
                pipe.time()
                pipe.zmscore(self.keyspace.nodes, nodes)
            answers = await pipe.execute()
            frozen = self._silent(nodes, answers[len(remote) :])
            for (mid, node, _), n in zip(remote, answers[: len(remote)], strict=True):
                if node not in frozen:
                    reached[mid] += int(n)
        lost = [p for p in pushes if reached[p.id] == 0]
        for p in lost:
            log.debug("message %s reached no connection of user %s", p.id, p.user_id)
        return lost

    def _silent(self, nodes: list[str], answers: list[Any]) -> set[str]:
        """Nodes whose heartbeat is older than the heartbeat timeout. A node counts by
        its heartbeat, not by PUBLISH's count of subscribers: a frozen process
        (SIGSTOP, a stalled VM) keeps its subscription but reads nothing, so its
        messages must go elsewhere or park instead of using up their attempts on it."""
        if not answers or self.heartbeat_timeout_ms is None:
            return set()
        (sec, usec), seen = answers
        cutoff = int(sec) * 1000 + int(usec) // 1000 - self.heartbeat_timeout_ms
        return {n for n, ms in zip(nodes, seen, strict=True) if ms is None or ms < cutoff}


def _group(targets: Sequence[tuple[str, str]]) -> list[tuple[str, list[str]]]:
    by_node: dict[str, list[str]] = defaultdict(list)
    for node, conn in targets:
        by_node[node].append(conn)
    return list(by_node.items())
