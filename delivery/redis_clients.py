"""Redis clients for one server or a Redis Cluster, with the same API for Courier.

On a single server Courier uses ``redis.asyncio.Redis`` / ``redis.Redis`` as they are.
A deployment names a cluster with the URL scheme ``redis+cluster://host:port``
(``rediss+cluster://`` with TLS), or with ``COURIER_REDIS_CLUSTER=true`` and a plain
URL; any one node is enough, the client discovers the others.

The key layout is already legal there (one hash tag per partition; every script gets
the partition prefix as ``KEYS[1]``), so a script call routes to the slot of its
partition. What redis-py's ``RedisCluster`` does not do by itself, and
:class:`AsyncCluster` / :class:`SyncCluster` add:

* Scripts in pipelines. The cluster pipeline refuses ``evalsha()`` and never loads a
  script. Here a pipelined script call is a plain ``EVALSHA`` routed by ``KEYS[1]``;
  each script is loaded on every primary (``SCRIPT LOAD``) before its first pipelined
  use, and a call that still meets ``NOSCRIPT`` (a primary restarted or was promoted)
  is sent again alone after loading it again: NOSCRIPT means it did not run.
* Each edge node's own channels (frames, operators' orders) are *shard channels*
  (``SPUBLISH`` / ``SSUBSCRIBE``, Redis 7) in the slot of the node id
  (:meth:`Keyspace.node_channel`): a frame goes to one primary, the one serving that
  slot, and ``SPUBLISH`` answers how many listen there, the number Courier relies on
  (zero: the edge node is gone, retry at once). :meth:`AsyncCluster.shard_pubsub` is a
  plain connection to that primary.
* The deployment-wide channels (topics, broadcasts, replies, task cancels) stay plain
  pub/sub, which Redis Cluster carries to every node; PUBLISH answers only how many
  listen on the node that took it, so every PUBLISH and SUBSCRIBE of them goes to one
  primary: the one serving the slot of ``pubsub_key`` (the key prefix).
* No ``COMMAND GETKEYS``. redis-py finds the keys of a command whose keys move
  (``XREADGROUP``, ``XREAD``) by asking a node, one more round trip per call, all on
  one node; here the slot of a stream read is that of its first stream, computed
  locally (the server refuses a read across slots anyway).
* No script on half a partition. A script declares only its partition prefix
  (``KEYS[1]``, a key that never exists), so while the partition's slot migrates the
  source answers ASK for every script call; following it would run the script on the
  target against the keys moved so far. Here an ASK for ``EVALSHA`` is
  :class:`SlotMigrating` (a TRYAGAIN: the caller answers 503 with Retry-After, the
  consumers retry), and so is an ASK for a batch's room reservation (``_NO_ASK``);
  MOVED is followed: once the slot has moved, every key is there
  (``courier cluster move``, delivery/resharding.py).
* ``TIME`` and ``PUBLISH`` inside pipelines (refused by the cluster pipeline).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Generator, Iterable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
import redis.asyncio as aioredis
from redis.asyncio import cluster as aiocluster
from redis.asyncio.client import PubSub as AsyncPubSub
from redis.cluster import ClusterPipeline as SyncClusterPipelineBase
from redis.cluster import RedisCluster as SyncRedisCluster
from redis.exceptions import (
    AskError,
    ClusterError,
    MovedError,
    NoScriptError,
    RedisError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)

CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
PIPELINE_RETRY_S = 0.1
"""Pause before a cluster pipeline is sent again after a node was out of reach."""


def cluster_seed(url: str, cluster: bool = False) -> str | None:
    """The plain ``redis://`` URL of a cluster node when ``url`` names a Redis Cluster
    (its scheme, or ``cluster``), else None: a single server."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme.lower() in CLUSTER_SCHEMES:
        return f"{CLUSTER_SCHEMES[scheme.lower()]}://{rest}"
    return url if cluster else None


def node_url(url: str, host: str, port: int) -> str:
    """``url`` (scheme, credentials, query) pointed at one node."""
    parts = urlsplit(url)
    auth, at, _ = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{auth}{at}{host}:{port}", path=""))


class _Queued:
    """What a pipelined script call returns: awaiting it gives the pipeline back
    without re-initialising it (awaiting a cluster pipeline empties its queue)."""

    __slots__ = ("pipe",)

    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe

    def __await__(self) -> Generator[Any, None, Any]:
        return self.pipe
        yield  # a generator: never awaited, it is dropped without a warning


class SlotMigrating(TryAgainError):
    """A script call met ASK: its partition's slot is moving (see the module doc)."""


def _stream_read_key(args: tuple[Any, ...]) -> Any:
    """The first stream of an ``XREADGROUP`` / ``XREAD`` (the word after ``STREAMS``)."""
    for i, a in enumerate(args):
        word = a.decode() if isinstance(a, bytes) else a
        if isinstance(word, str) and word.upper() == "STREAMS" and i + 1 < len(args):
            return args[i + 1]
    return None


_NO_ASK = {"EVALSHA", "SETRANGE"}
"""Commands that never follow ASK (module doc): script calls, and the reservations of
a request of several script calls (SETRANGE, delivery/producer.py ``rooms``). A
reservation granted on the target of a migrating partition let the request's other
partitions be written, then the script of that one refused: a 503 for a request
that was mostly accepted, duplicated when the producer sent it again."""


def _refuses_ask(args: tuple[Any, ...]) -> bool:
    return bool(args) and isinstance(args[0], str) and args[0].upper() in _NO_ASK


def _slot_migrating(e: AskError) -> SlotMigrating:
    return SlotMigrating(
        f"TRYAGAIN slot {e.slot_id} is moving to {e.host}:{e.port}: "
        "its partition takes scripts again once it is there"
    )


def _script_sync(client: Any, target_node: Any, *args: Any, **kwargs: Any) -> Any:
    """A script call on a blocking cluster client or pipeline: MOVED followed, ASK
    refused (module doc; redis-py would follow it with ASKING)."""
    for _ in range(client.RedisClusterRequestTTL):
        try:
            return client.get_redis_connection(target_node).execute_command(*args, **kwargs)
        except MovedError as e:
            client.nodes_manager.move_slot(e)
            target_node = client.nodes_manager.get_node_from_slot(e.slot_id)
        except AskError as e:
            raise _slot_migrating(e) from None
        except (RedisConnectionError, RedisTimeoutError):
            # the node is gone (failover): read the slot map again, as redis-py does,
            # before its retry of the call
            with contextlib.suppress(RedisError):
                client.nodes_manager.initialize()
            raise
    raise ClusterError("TTL exhausted.")


_STREAM_READS = {"XREADGROUP", "XREAD"}


def _raise_first(results: list[Any]) -> None:
    for res in results:
        if isinstance(res, Exception):
            raise res


def _missing_scripts(scripted: dict[int, tuple[Any, ...]], results: list[Any]) -> list[int]:
    return [pos for pos in scripted if isinstance(results[pos], NoScriptError)]


# -- asyncio ---------------------------------------------------------------------------


class AsyncCluster(aiocluster.RedisCluster):
    """``redis.asyncio.cluster.RedisCluster`` that runs Courier (see the module doc)."""

    def __init__(
        self,
        *args: Any,
        pubsub_key: str = "courier",
        seed_url: str = "redis://",  # scheme and credentials of node URLs (async_cluster)
        pubsub_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.pubsub_key = pubsub_key
        self.seed_url = seed_url
        self.pubsub_options = pubsub_options or {}
        self.script_sources: dict[str, Any] = {}
        self.scripts_loaded: set[str] = set()

    def register_script(self, script: Any) -> Any:
        registered = super().register_script(script)
        self.script_sources[registered.sha] = script
        return registered

    async def load_scripts(self, shas: Iterable[str], *, again: bool = False) -> None:
        """Load scripts on every primary (once, or ``again`` after NOSCRIPT)."""
        for sha in shas:
            if (again or sha not in self.scripts_loaded) and sha in self.script_sources:
                await self.script_load(self.script_sources[sha])
                self.scripts_loaded.add(sha)

    async def _determine_slot(self, command: str, *args: Any) -> int:
        # no COMMAND GETKEYS round trip for a stream read (module doc)
        if isinstance(command, str) and command.upper() in _STREAM_READS:
            key = _stream_read_key(args)
            if key is not None:
                return int(self.keyslot(key))
        return int(await super()._determine_slot(command, *args))

    async def _execute_command(
        self, target_node: aiocluster.ClusterNode, *args: Any, **kwargs: Any
    ) -> Any:
        # a script follows MOVED, never ASK (module doc); the rest as redis-py does it
        if not _refuses_ask(args):
            return await super()._execute_command(target_node, *args, **kwargs)
        for _ in range(self.RedisClusterRequestTTL):
            try:
                return await target_node.execute_command(*args, **kwargs)
            except MovedError as e:
                await self.nodes_manager.move_slot(e)
                target_node = self.nodes_manager.get_node_from_slot(e.slot_id)
            except AskError as e:
                raise _slot_migrating(e) from None
            except (RedisConnectionError, RedisTimeoutError):
                self._initialize = True  # read the slot map again (redis-py does so)
                raise
        raise ClusterError("TTL exhausted.")

    async def pubsub_node(self, key: Any = None) -> aiocluster.ClusterNode:
        """The primary that carries this deployment's pub/sub (``key``: the one serving
        the slot of that shard channel instead)."""
        if self._initialize:
            await self.initialize()
        key = self.pubsub_key if key is None else key
        node = self.get_node_from_key(key)
        if node is None:
            raise RedisError(f"no cluster node serves the slot of {key!r}")
        return node

    # override: a plain PubSub on one node (module doc), not redis-py's ClusterPubSub
    def pubsub(self, **kwargs: Any) -> AsyncPubSub:  # type: ignore[override]
        return _NodePubSub(self, **kwargs)

    def shard_pubsub(self, channel: Any, **kwargs: Any) -> AsyncPubSub:
        """A plain PubSub on the primary serving ``channel``'s slot, for SSUBSCRIBE."""
        return _NodePubSub(self, shard_channel=channel, **kwargs)

    async def publish(self, channel: Any, message: Any, **kwargs: Any) -> int:
        node = await self.pubsub_node()
        return int(
            await self.execute_command("PUBLISH", channel, message, target_nodes=node, **kwargs)
        )

    def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> AsyncClusterPipeline:
        if shard_hint:
            raise RedisError("shard_hint is not supported in cluster mode")
        # abstract: the stubs see _event_dispatcher as abstract; redis-py's own pipeline()
        # builds this class the same way
        return AsyncClusterPipeline(self, transaction)  # type: ignore[abstract]


class _NodePubSub(AsyncPubSub):
    """A plain pub/sub connection to the deployment's pub/sub node, found on first use."""

    def __init__(self, cluster: AsyncCluster, shard_channel: Any = None, **kwargs: Any) -> None:
        self._cluster = cluster
        self._shard_channel = shard_channel
        super().__init__(
            connection_pool=None,  # type: ignore[arg-type]  # set in connect()
            encoder=cluster.get_encoder(),
            **kwargs,
        )

    async def connect(self) -> None:
        if self.connection_pool is None:
            node = await self._cluster.pubsub_node(self._shard_channel)
            self.connection_pool = aioredis.ConnectionPool.from_url(
                node_url(self._cluster.seed_url, node.host, node.port),
                **self._cluster.pubsub_options,
            )
        try:
            await super().connect()
        except (RedisConnectionError, RedisTimeoutError, OSError):
            # the node is gone (failover): read the slot map again before the next try
            self._cluster._initialize = True
            await self.connection_pool.disconnect()
            self.connection_pool = None  # type: ignore[assignment]
            raise

    async def parse_response(self, block: bool = True, timeout: float = 0) -> Any:  # noqa: ASYNC109
        try:
            return await super().parse_response(block=block, timeout=timeout)
        except MovedError as e:
            # SSUBSCRIBE on a master that no longer serves the channel's slot: it moved
            # (resharding) and this client's slot map did not know. The map learns where
            # it is now, so that the listener's next try subscribes there; retrying on
            # the stale map met MOVED for ever, frames to the node finding no listener
            await self._cluster.nodes_manager.move_slot(e)
            raise RedisConnectionError(f"shard channel moved: {e}") from None

    async def aclose(self) -> None:
        await super().aclose()
        if self.connection_pool is not None:
            await self.connection_pool.disconnect()


class AsyncClusterPipeline(aiocluster.ClusterPipeline):
    """The cluster pipeline with script calls, PUBLISH and TIME."""

    cluster_client: AsyncCluster

    def __init__(self, client: AsyncCluster, transaction: Any = None) -> None:
        super().__init__(client, transaction)
        self._scripted: dict[int, tuple[Any, ...]] = {}  # position -> EVALSHA command
        self._publishes: list[int] = []  # positions whose node is set in execute()
        self.noscript_retried = False

    def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any:
        command = ("EVALSHA", sha, numkeys, *keys_and_args)
        self._scripted[len(self)] = command
        self.execute_command(*command)
        return _Queued(self)

    def publish(self, channel: Any, message: Any, **kwargs: Any) -> Any:
        self._publishes.append(len(self))
        return self.execute_command("PUBLISH", channel, message, **kwargs)

    def time(self, **kwargs: Any) -> Any:
        return self.execute_command("TIME", **kwargs)

    async def execute(
        self, raise_on_error: bool = True, allow_redirections: bool = True
    ) -> list[Any]:
        client = self.cluster_client
        scripted, self._scripted = self._scripted, {}
        publishes, self._publishes = self._publishes, []
        if publishes:  # routed now: the client may (re)initialise in between
            node = await client.pubsub_node()
            # attr-defined: the strategy's queue is private to redis-py (pinned in the lock)
            queue = self._execution_strategy._command_queue  # type: ignore[attr-defined]
            for pos in publishes:
                queue[pos].kwargs["target_nodes"] = node
        if scripted:
            await client.load_scripts({c[1] for c in scripted.values()})
        if isinstance(self._execution_strategy, aiocluster.PipelineStrategy):
            try:
                results = await self._run(allow_redirections)
            finally:
                await super().reset()
        else:  # a MULTI of one slot: redis-py's own
            results = await super().execute(False, allow_redirections)
        missing = _missing_scripts(scripted, results)
        if missing:
            self.noscript_retried = True  # on other connections (delivery/replication.py)
            log.info("NOSCRIPT for %d pipelined script calls: loading again", len(missing))
            await client.load_scripts({scripted[p][1] for p in missing}, again=True)
            for pos in missing:
                try:
                    results[pos] = await client.execute_command(*scripted[pos])
                except RedisError as e:
                    results[pos] = e
        if raise_on_error:
            _raise_first(results)
        return results

    async def _run(self, allow_redirections: bool) -> list[Any]:
        """redis-py's pipeline execution, retried the same way (a node out of reach:
        read the slot map again, then send what has no answer yet) but without closing
        every connection of the client first: that close failed the calls other
        requests had in flight on the healthy masters (issue 15)."""
        client = self.cluster_client
        # attr-defined: the strategy's queue and _execute are private to redis-py
        strategy: Any = self._execution_strategy
        if not strategy._command_queue:
            return []
        attempts = client.retry.get_retries()
        while True:
            try:
                if client._initialize:
                    await client.initialize()
                return list(
                    await strategy._execute(
                        client,
                        strategy._command_queue,
                        raise_on_error=False,
                        allow_redirections=allow_redirections,
                    )
                )
            except (*aiocluster.RedisCluster.ERRORS_ALLOW_RETRY, AttributeError) as e:
                if isinstance(e, AttributeError):
                    # redis-py's teardown race: a connection another task disconnected
                    # (its writer None) while this one sent on it; nothing went out
                    if "NoneType" not in str(e):
                        raise
                    e = RedisConnectionError(f"connection closed while in use ({e})")
                if attempts <= 0:
                    raise e from None
                attempts -= 1
                client._initialize = True
                await asyncio.sleep(PIPELINE_RETRY_S)

    # override: the stubs mix up the pipeline's reset with the RESET command's
    async def reset(self) -> None:  # type: ignore[override]
        self._scripted = {}
        self._publishes = []
        await super().reset()


def async_cluster(
    url: str,
    *,
    pubsub_key: str = "courier",
    pubsub_options: dict[str, Any] | None = None,
    **options: Any,
) -> AsyncCluster:
    """An :class:`AsyncCluster` from a node's plain URL (see :func:`cluster_seed`)."""
    # return-value: redis-py's from_url is typed as returning RedisCluster, not cls
    # reinitialize_steps=0: a MOVED patches the slot map (redis-py's default closes
    # every connection of the client on each 5th MOVED, failing what is in flight)
    options.setdefault("reinitialize_steps", 0)
    return AsyncCluster.from_url(  # type: ignore[return-value]
        url, pubsub_key=pubsub_key, seed_url=url, pubsub_options=pubsub_options, **options
    )


# -- blocking ----------------------------------------------------------------------------


class SyncCluster(SyncRedisCluster):
    """``redis.cluster.RedisCluster`` that runs Courier (see the module doc)."""

    def __init__(self, *args: Any, pubsub_key: str = "courier", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pubsub_key = pubsub_key
        self.script_sources: dict[str, Any] = {}
        self.scripts_loaded: set[str] = set()

    def register_script(self, script: Any) -> Any:
        registered = super().register_script(script)
        self.script_sources[registered.sha] = script
        return registered

    def load_scripts(self, shas: Iterable[str], *, again: bool = False) -> None:
        for sha in shas:
            if (again or sha not in self.scripts_loaded) and sha in self.script_sources:
                self.script_load(self.script_sources[sha])
                self.scripts_loaded.add(sha)

    def determine_slot(self, *args: Any) -> Any:
        # no COMMAND GETKEYS round trip for a stream read (module doc)
        if args and isinstance(args[0], str) and args[0].upper() in _STREAM_READS:
            key = _stream_read_key(args[1:])
            if key is not None:
                return self.keyslot(key)
        return super().determine_slot(*args)

    def _execute_command(self, target_node: Any, *args: Any, **kwargs: Any) -> Any:
        # a script follows MOVED, never ASK (module doc), as in AsyncCluster
        if _refuses_ask(args):
            return _script_sync(self, target_node, *args, **kwargs)
        return super()._execute_command(target_node, *args, **kwargs)

    def pubsub_node(self) -> Any:
        return self.get_node_from_key(self.pubsub_key)

    # override: a plain PubSub on one node (module doc), not redis-py's ClusterPubSub
    def pubsub(self, **kwargs: Any) -> Any:  # type: ignore[override]
        return self.pubsub_node().redis_connection.pubsub(**kwargs)

    def publish(self, channel: Any, message: Any, **kwargs: Any) -> int:
        return int(
            self.execute_command(
                "PUBLISH", channel, message, target_nodes=self.pubsub_node(), **kwargs
            )
        )

    def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> Any:
        pipe = super().pipeline(transaction=transaction, shard_hint=shard_hint)
        # redis-py builds the ClusterPipeline itself; ours only adds methods
        pipe.__class__ = SyncClusterPipeline
        pipe.courier = self
        pipe.scripted = {}
        return pipe


class SyncClusterPipeline(SyncClusterPipelineBase):
    """The blocking cluster pipeline with script calls, PUBLISH and TIME."""

    courier: SyncCluster
    scripted: dict[int, tuple[Any, ...]]

    def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any:
        command = ("EVALSHA", sha, numkeys, *keys_and_args)
        self.scripted[len(self)] = command
        return self.execute_command(*command)

    def publish(self, channel: Any, message: Any, **kwargs: Any) -> Any:
        return self.execute_command(
            "PUBLISH", channel, message, target_nodes=self.courier.pubsub_node(), **kwargs
        )

    def time(self, **kwargs: Any) -> Any:
        return self.execute_command("TIME", **kwargs)

    def _execute_command(self, target_node: Any, *args: Any, **kwargs: Any) -> Any:
        # redis-py sends a call that met ASK or MOVED in a pipeline again alone, through
        # the pipeline's own _execute_command: a script must not follow ASK there either
        if _refuses_ask(args):
            return _script_sync(self, target_node, *args, **kwargs)
        return super()._execute_command(target_node, *args, **kwargs)

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        scripted, self.scripted = self.scripted, {}
        if scripted:
            self.courier.load_scripts({c[1] for c in scripted.values()})
        results = super().execute(False)
        missing = _missing_scripts(scripted, results)
        if missing:
            log.info("NOSCRIPT for %d pipelined script calls: loading again", len(missing))
            self.courier.load_scripts({scripted[p][1] for p in missing}, again=True)
            for pos in missing:
                try:
                    results[pos] = self.courier.execute_command(*scripted[pos])
                except RedisError as e:
                    results[pos] = e
        if raise_on_error:
            _raise_first(results)
        return results

    # override: the stubs mix up the pipeline's reset with the RESET command's
    def reset(self) -> None:  # type: ignore[override]
        self.scripted = {}
        super().reset()


# -- one entry point ------------------------------------------------------------------------


def async_client(url: str, *, cluster: bool = False, pubsub_key: str = "courier") -> Any:
    """``redis.asyncio.Redis.from_url(url)``, or an :class:`AsyncCluster` when the URL
    (or ``cluster``) names a Redis Cluster."""
    seed = cluster_seed(url, cluster)
    if seed is None:
        return aioredis.Redis.from_url(url)
    return async_cluster(seed, pubsub_key=pubsub_key)


def sync_client(url: str, *, cluster: bool = False, pubsub_key: str = "courier") -> Any:
    """``redis.Redis.from_url(url)``, or a :class:`SyncCluster` (see :func:`async_client`)."""
    seed = cluster_seed(url, cluster)
    if seed is None:
        return redis.Redis.from_url(url)
    return SyncCluster.from_url(seed, pubsub_key=pubsub_key)


def is_cluster(client: Any) -> bool:
    return isinstance(client, AsyncCluster | SyncCluster | aiocluster.RedisCluster)


# -- an edge node's own channels ------------------------------------------------------------


def node_pubsub(client: Any, channel: Any, *, sharded: bool) -> AsyncPubSub:
    """The pub/sub connection for one edge node's own channels: on the primary serving
    ``channel``'s slot when ``sharded`` (shard channels), else ``client.pubsub()``."""
    if sharded and isinstance(client, AsyncCluster):
        return client.shard_pubsub(channel)
    # a single server takes SSUBSCRIBE too (Redis 7): tests use a sharded keyspace there
    return client.pubsub()  # type: ignore[no-any-return]


async def node_subscribe(ps: AsyncPubSub, *channels: Any, sharded: bool) -> None:
    """SSUBSCRIBE (``sharded``) or SUBSCRIBE to an edge node's own channels."""
    if sharded:
        await ps.ssubscribe(*channels)
    else:
        await ps.subscribe(*channels)


def node_publish(target: Any, channel: Any, data: Any, *, sharded: bool) -> Any:
    """SPUBLISH (``sharded``) or PUBLISH on a client or pipeline: what it answers (a
    pipeline queues it)."""
    return target.spublish(channel, data) if sharded else target.publish(channel, data)
