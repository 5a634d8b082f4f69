"""Wire one process together from :class:`Settings`: Redis client, producer, store,
presence, transport and consumers. The CLI and the app factory both use it."""

from __future__ import annotations

import logging
import os
import secrets
import socket
from dataclasses import dataclass, field
from typing import cast

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from consumers.runner import Consumers
from consumers.webhooks import WebhookConfig, WebhookDispatcher
from delivery.keys import Keyspace
from delivery.packing import use_packed
from delivery.presence import Presence
from delivery.producer import Limits, Producer
from delivery.redis_clients import async_cluster, cluster_seed
from delivery.settings import Settings
from delivery.store import Store, Timing
from delivery.transport import LocalSink, RedisTransport
from delivery.webhook_store import WebhookStore
from delivery.webhooks import parse_endpoints

log = logging.getLogger(__name__)


def make_node_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def redis_client(url: str, *, cluster: bool = False, pubsub_key: str = "courier") -> aioredis.Redis:
    """An asyncio client whose commands survive short outages by themselves.

    The pool blocks (up to 20 s) for a free connection instead of raising
    ``MaxConnectionsError`` when more than 512 commands are in flight at once (a
    thousand clients acking together), which used to close their sockets with 1011.

    A ``redis+cluster://`` URL (or ``cluster``) gives a Redis Cluster client with the
    same API (delivery/redis_clients.py); its pub/sub goes to the node of `pubsub_key`.
    Commands are packed by hiredis (:mod:`delivery.packing`)."""
    seed = cluster_seed(url, cluster)
    if seed is not None:
        return _cluster_client(seed, pubsub_key)
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=512,
        timeout=20,
        health_check_interval=10,
        socket_connect_timeout=5,
        socket_keepalive=True,
        retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=1.0), 3),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )
    return aioredis.Redis.from_pool(use_packed(pool))


def _cluster_client(seed: str, pubsub_key: str) -> aioredis.Redis:
    options: dict[str, object] = {
        "health_check_interval": 10,
        "socket_connect_timeout": 5,
        "socket_keepalive": True,
    }
    client = async_cluster(
        seed,
        pubsub_key=pubsub_key,
        pubsub_options=options,
        # per node; the cluster pool cannot block, so it is larger than the single one
        max_connections=2048,
        retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=1.0), 3),
        **options,
    )
    return cast(aioredis.Redis, client)  # the same command API


@dataclass
class Runtime:
    settings: Settings
    redis: aioredis.Redis
    keyspace: Keyspace
    node_id: str
    producer: Producer
    store: Store
    presence: Presence
    transport: RedisTransport
    webhooks: WebhookStore
    consumers: Consumers | None = None
    extras: dict[str, object] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        local: LocalSink | None = None,
        with_consumers: bool = True,
        node_id: str | None = None,
    ) -> Runtime:
        if not settings.redis_url:  # never a guess: see load_settings
            raise ValueError("settings.redis_url is not set: use api.runtime.load_settings()")
        client = redis_client(
            settings.redis_url,
            cluster=settings.redis_cluster,
            pubsub_key=settings.key_prefix,
        )
        ks = settings.keyspace()
        node = node_id or settings.node_id or make_node_id()
        timing = Timing.from_settings(settings)
        store = Store(client, keyspace=ks, timing=timing)
        transport = RedisTransport(
            client,
            keyspace=ks,
            node_id=node,
            local=local,
            heartbeat_timeout_ms=int(settings.heartbeat_timeout_seconds * 1000),
        )
        webhooks = WebhookStore(client, keyspace=ks, static=parse_endpoints(settings.webhooks))
        consumers = None
        if with_consumers:
            dispatcher = None
            if settings.webhook_delivery:
                dispatcher = WebhookDispatcher(
                    client,
                    keyspace=ks,
                    store=webhooks,
                    consumer=node,
                    config=WebhookConfig.from_settings(settings),
                )
            consumers = Consumers(
                client,
                store=store,
                transport=transport,
                keyspace=ks,
                consumer=node,
                read_count=settings.read_count,
                block_ms=settings.read_block_ms,
                poison_deliveries=settings.poison_deliveries,
                scheduler_interval=settings.scheduler_interval_seconds,
                webhooks=dispatcher,
                heartbeat_seconds=settings.consumer_heartbeat_seconds,
            )
        return cls(
            settings=settings,
            redis=client,
            keyspace=ks,
            node_id=node,
            producer=Producer(client, keyspace=ks, limits=Limits.from_settings(settings)),
            store=store,
            presence=Presence(
                client,
                keyspace=ks,
                heartbeat_timeout_ms=int(settings.heartbeat_timeout_seconds * 1000),
            ),
            transport=transport,
            webhooks=webhooks,
            consumers=consumers,
        )

    async def close(self) -> None:
        if self.consumers is not None and self.consumers.started:
            await self.consumers.stop()
        await self.redis.aclose()


def load_settings(
    *, make_secret: bool = False, redis: bool = True, **overrides: object
) -> Settings:
    """Settings from the environment (``COURIER_*``), completed from the data folder:
    the Redis of the `courier serve` running there (unless ``COURIER_REDIS_URL`` is
    set) and its generated JWT secret (made when `make_secret` and none exists).

    The documented way for the CLI, scripts and producers to find Courier::

        producer = Producer.from_settings(load_settings())

    Raises :class:`api.instance.InstanceError` (one line: what to do) when `redis` and
    no instance runs there and no URL is set; never falls back to another Redis."""
    import secrets as _secrets

    from .instance import DataFolder, resolve_redis, shown_url

    s = Settings()
    folder = DataFolder(s.data_dir)
    if redis:
        given = overrides.get("redis_url") or s.redis_url
        url, source = resolve_redis(given if isinstance(given, str) else None, s.data_dir)
        overrides["redis_url"] = url
        log.info("using Redis at %s (%s)", shown_url(url), source)
    if not s.jwt_secret:
        secret_file = folder.secret_file
        if not secret_file.exists() and make_secret:
            folder.path.mkdir(parents=True, exist_ok=True)
            secret_file.touch(mode=0o600)
            secret_file.write_text(_secrets.token_urlsafe(32))
        if secret_file.exists():
            overrides.setdefault("jwt_secret", secret_file.read_text().strip())
    return s.model_copy(update={k: v for k, v in overrides.items() if v is not None})
