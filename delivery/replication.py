"""Synchronous replication of accepted messages (``SYNC_REPLICAS``, ``SYNC_TIMEOUT_MS``).

Redis replicates asynchronously: a master can answer an enqueue, then die before its
replica has the message, and the promoted replica never saw it. With ``SYNC_REPLICAS``
set, the enqueue's pipeline ends with ``WAIT <replicas> <timeout>`` on the master of
each partition it wrote to, *on the same connection* as the scripts (WAIT counts the
replicas that have every write of its own connection). A request is accepted (202)
only when every WAIT answered at least ``SYNC_REPLICAS``; otherwise it is refused with
``503 not_replicated``: the message is written and may still be delivered (if the
master survives, or the replica got it after all), so a producer retries it with the
same idempotency key and delivery stays at least once.

A script call that met ``NOSCRIPT`` (a promoted replica has no scripts yet) is sent
again on another connection, which the WAIT before it does not cover: such a request
counts as not replicated.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .exceptions import CourierError
from .redis_clients import AsyncCluster, SyncCluster

NOT_REPLICATED_RETRY_AFTER = 1


class NotReplicated(CourierError):
    """Fewer replicas than ``SYNC_REPLICAS`` acknowledged an accepted enqueue."""

    code = "not_replicated"
    http_status = 503
    retry_after = NOT_REPLICATED_RETRY_AFTER


async def wait_targets(client: Any, prefixes: Sequence[str]) -> list[Any]:
    """The masters to WAIT on: those of the partitions (cluster), else [None]."""
    if not isinstance(client, AsyncCluster):
        return [None]
    nodes = {}
    for prefix in prefixes:
        node = await client.pubsub_node(prefix)  # the primary serving that slot
        nodes[node.name] = node
    return list(nodes.values())


def wait_targets_sync(client: Any, prefixes: Sequence[str]) -> list[Any]:
    """:func:`wait_targets` for a blocking client."""
    if not isinstance(client, SyncCluster):
        return [None]
    nodes = {}
    for prefix in prefixes:
        node: Any = client.get_node_from_key(prefix)  # type: ignore[no-untyped-call]
        nodes[node.name] = node
    return list(nodes.values())


def wait_commands(targets: Sequence[Any], replicas: int, timeout_ms: int) -> list[Any]:
    """One ``WAIT`` command (args, kwargs) per target for :meth:`Scripts.pipelined`."""
    return [
        (("WAIT", replicas, timeout_ms), {} if t is None else {"target_nodes": t}) for t in targets
    ]


def check(acked: Sequence[Any], replicas: int, retried: bool) -> None:
    """Raise :class:`NotReplicated` unless every WAIT saw ``replicas`` replicas."""
    got = min((int(a) for a in acked), default=replicas)
    if retried or got < replicas:
        seen = "an unknown number" if retried else str(got)
        raise NotReplicated(
            f"accepted by Redis but acknowledged by {seen} of the {replicas} replicas "
            "SYNC_REPLICAS asks for within SYNC_TIMEOUT_MS; "
            "the message may still be delivered: retry with the same idempotency key"
        )
