"""Gauges that describe Redis (stream depth, pending, lag, waiting sets, dead letters,
presence), read when ``/metrics`` is scraped.

prometheus-client collectors are synchronous, Redis is not: the ``/metrics`` endpoint
first awaits :func:`refresh` (one pipelined :meth:`Queries.stats` and a PING, bounded
by a timeout), then renders the registry; :class:`RedisCollector` yields the snapshot.
These gauges describe the whole deployment, so every edge reports the same values:
aggregate them with ``max``, not ``sum``. Counters and histograms of
``delivery.metrics`` are per process (one scrape target per process).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from delivery import clock
from delivery.metrics import REDIS_ERRORS

from .routes_admin import queries
from .runtime import Runtime

log = logging.getLogger(__name__)

REFRESH_TIMEOUT = 2.0


class RedisCollector(Collector):
    def __init__(self) -> None:
        self.snapshot: dict[str, Any] | None = None
        self.redis_up: float | None = None
        self.ping_seconds: float | None = None
        self.consumers_running: float | None = None
        self.memory: tuple[float, float] | None = None  # used, maxmemory (0: no limit)

    def collect(self) -> Iterator[Metric]:
        if self.redis_up is not None:
            yield _gauge("courier_redis_up", "1 when Redis answered the last scrape", self.redis_up)
        if self.ping_seconds is not None:
            yield _gauge(
                "courier_redis_ping_seconds",
                "Redis PING round trip at the last scrape",
                self.ping_seconds,
            )
        if self.consumers_running is not None:
            yield _gauge(
                "courier_consumers_running",
                "1 when this process's consumers and scheduler run",
                self.consumers_running,
            )
        if self.memory is not None:
            used, limit = self.memory
            yield _gauge("courier_redis_memory_used_bytes", "Redis used_memory", used)
            yield _gauge("courier_redis_maxmemory_bytes", "Redis maxmemory (0: no limit)", limit)
        s = self.snapshot
        if s is None:
            return
        yield from _stream_gauges(s)
        for name, key, doc in (
            ("courier_delayed_messages", "delayed", "Messages waiting for their due time"),
            ("courier_inflight_messages", "inflight", "Messages sent and waiting for an ack"),
            ("courier_parked_messages", "parked", "Messages parked for offline users"),
            ("courier_dead_letters", "dead_letters", "Entries in the dead-letter streams"),
            ("courier_online_users", "online_users", "Users with a live connection (presence)"),
            ("courier_nodes_alive", "nodes_alive", "Edge nodes whose heartbeat is recent"),
            (
                "courier_consumers_alive",
                "consumers_alive",
                "Consumers processes whose heartbeat is recent",
            ),
        ):
            yield _gauge(name, doc, s[key])
        conns = GaugeMetricFamily(
            "courier_node_connections", "Live connections per edge node (presence)", labels=["node"]
        )
        for n in s["nodes"]:
            conns.add_metric([n["node_id"]], n["connections"])
        yield conns


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _stream_gauges(s: dict[str, Any]) -> Iterator[Metric]:
    labels = ["partition", "priority"]
    length = GaugeMetricFamily(
        "courier_stream_length", "Entries in a priority stream", labels=labels
    )
    pending = GaugeMetricFamily(
        "courier_stream_pending", "Entries read by a consumer and not yet dispatched", labels=labels
    )
    lag = GaugeMetricFamily(
        "courier_consumer_lag", "Entries not yet read by the consumer group", labels=labels
    )
    for part in s["partitions"]:
        for prio, row in part["streams"].items():
            key = [str(part["partition"]), prio]
            length.add_metric(key, row["length"])
            pending.add_metric(key, row["pending"])
            lag.add_metric(key, row["lag"])
    yield from (length, pending, lag)


COLLECTOR = RedisCollector()
_installed: set[int] = set()


def install(registry: CollectorRegistry = REGISTRY) -> None:
    """Register the collector once per registry (create_app may run several times)."""
    if id(registry) not in _installed:
        registry.register(COLLECTOR)
        _installed.add(id(registry))


async def refresh(rt: Runtime) -> None:
    """Read the deployment's state for the next render; on failure report Redis down."""
    consumers = rt.consumers
    COLLECTOR.consumers_running = None if consumers is None else float(consumers.alive)
    t0 = clock.monotonic()
    try:
        await asyncio.wait_for(rt.redis.ping(), REFRESH_TIMEOUT)
        COLLECTOR.ping_seconds = clock.monotonic() - t0
        COLLECTOR.snapshot = await asyncio.wait_for(queries(rt).stats(), REFRESH_TIMEOUT)
        COLLECTOR.memory = _memory(await asyncio.wait_for(rt.redis.info("memory"), REFRESH_TIMEOUT))
        COLLECTOR.redis_up = 1.0
    except Exception as e:  # unreachable or too slow: say so instead of failing the scrape
        REDIS_ERRORS.labels("metrics").inc()
        log.warning("metrics: redis unavailable (%s)", e)
        COLLECTOR.redis_up = 0.0
        COLLECTOR.ping_seconds = None
        COLLECTOR.snapshot = None
        COLLECTOR.memory = None


def _memory(info: Any) -> tuple[float, float] | None:
    """(used_memory, maxmemory) of INFO memory; on Redis Cluster (one answer per node)
    the fullest node's."""
    if "used_memory" in info:
        return float(info["used_memory"]), float(info.get("maxmemory", 0))
    rows = [v for v in info.values() if isinstance(v, dict) and "used_memory" in v]
    if not rows:
        return None
    full = max(rows, key=lambda v: v["used_memory"] / (v.get("maxmemory") or float("inf")))
    return float(full["used_memory"]), float(full.get("maxmemory", 0))


async def render(rt: Runtime, registry: CollectorRegistry = REGISTRY) -> bytes:
    await refresh(rt)
    return generate_latest(registry)
