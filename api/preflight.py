"""One PING before a command starts: a bad URL, a refused connection, or a Redis that
accepts TCP but never answers ends the command in one line that names the setting to
fix, within a few seconds, with no traceback."""

from __future__ import annotations

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from delivery.keys import Keyspace
from delivery.redis_clients import cluster_seed, sync_client
from delivery.settings import Settings

from .instance import InstanceError, shown_url

CONNECT_TIMEOUT = 2.0
ANSWER_TIMEOUT = 2.0


def check_redis(url: str, *, source: str, cluster: bool = False) -> str:
    """PING the Redis at `url` (for Redis Cluster: the seed node); its version.
    `source` says where the URL came from (e.g. ``COURIER_REDIS_URL``)."""
    seed = cluster_seed(url, cluster) or url
    fix = "set COURIER_REDIS_URL" if source != "COURIER_REDIS_URL" else "check COURIER_REDIS_URL"
    try:
        client = redis.Redis.from_url(
            seed,
            socket_connect_timeout=CONNECT_TIMEOUT,
            socket_timeout=ANSWER_TIMEOUT,
            retry=Retry(NoBackoff(), 0),  # one try: the answer is for a person waiting
        )
    except ValueError as e:
        raise InstanceError(f"{shown_url(url)!r} is not a Redis URL ({e}): {fix}") from None
    try:
        client.ping()
        version = str(client.info("server").get("redis_version", "?"))
    except redis.TimeoutError:
        raise InstanceError(
            f"Redis at {shown_url(url)} ({source}) accepted the connection but did not answer PING "
            f"within {ANSWER_TIMEOUT:.0f} s: is it a Redis? {fix}"
        ) from None
    except redis.AuthenticationError as e:
        raise InstanceError(
            f"Redis at {shown_url(url)} ({source}) refused the login ({e}): {fix}"
        ) from None
    except redis.ConnectionError as e:
        raise InstanceError(
            f"cannot connect to Redis at {shown_url(url)} ({source}): {e}; {fix}"
        ) from None
    except redis.RedisError as e:
        raise InstanceError(
            f"Redis at {shown_url(url)} ({source}) answered an error ({e}): {fix}"
        ) from None
    finally:
        client.close()
    return version


def check_key_layout(settings: Settings) -> None:
    """On Redis Cluster with spread hash tags (``PARTITION_TAGS`` ``auto`` or ``spread``),
    refuse to start over messages kept under the older ``{pK}`` tags: they would sit
    there unseen (the upgrade note in CHANGELOG: drain first, or keep ``pk``)."""
    ks = settings.keyspace()
    if not ks.spread or not settings.cluster:
        return
    old = Keyspace(ks.prefix, ks.partitions, spread=False, sharded=ks.sharded)
    names = [name for p in range(old.partitions) for name in old.streams(p)]
    client = sync_client(settings.redis_url or "", cluster=True)
    try:
        held = [name for name in names if client.exists(name)]
    except redis.RedisError:
        return  # the PING passed; a cluster still settling is the consumers' to wait out
    finally:
        client.close()
    if held:
        raise InstanceError(
            f"this cluster holds {len(held)} streams of the {{pK}} key layout (e.g. {held[0]}): "
            "set COURIER_PARTITION_TAGS=pk to keep serving them, or drain them with the "
            "earlier version before upgrading (CHANGELOG, issue 15)"
        )
