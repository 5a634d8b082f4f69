"""How a dispatched message reaches the nodes that hold its user's sockets.

The consumer that dispatched a message knows its targets (node, connection). Frames
for connections on this very process go straight to the local sink; frames for other
nodes are PUBLISHed on that node's channel. PUBLISH answers how many subscribers got
it: zero means the node is gone, and the message is retried at once instead of
waiting for its ack timeout. Pub/sub may still lose a frame (a node dying just after
receiving it); the ack timeout covers that, so delivery stays at least once.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import orjson
import redis.asyncio as aioredis

from .calls import Push
from .keys import Keyspace

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
    ) -> None:
        self.redis = client
        self.keyspace = keyspace
        self.node_id = node_id
        self.local = local

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
                pipe.publish(self.keyspace.node_channel(node), env)
            for (mid, _, _), n in zip(remote, await pipe.execute(), strict=True):
                reached[mid] += int(n)
        lost = [p for p in pushes if reached[p.id] == 0]
        for p in lost:
            log.debug("message %s reached no connection of user %s", p.id, p.user_id)
        return lost


def _group(targets: Sequence[tuple[str, str]]) -> list[tuple[str, list[str]]]:
    by_node: dict[str, list[str]] = defaultdict(list)
    for node, conn in targets:
        by_node[node].append(conn)
    return list(by_node.items())
