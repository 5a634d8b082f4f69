"""Prometheus metrics of the delivery pipeline (one registry per process).

Counters and histograms count what this process did, where it does the bookkeeping
(the producer, the store, the consumers, the edge); ``courier_connections`` is this
process's open sockets. The gauges that describe Redis (depths, pending, lag) are not
here: :mod:`api.metrics_collector` reads them when ``/metrics`` is scraped.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

ENQUEUED = Counter(
    "courier_enqueued_total", "Messages enqueued (HTTP, producers, task reports)", ["priority"]
)
DISPATCHED = Counter(
    "courier_dispatched_total", "Stream entries dispatched, by outcome", ["priority", "outcome"]
)
RETRIED = Counter("courier_retries_total", "Retry decisions, by result", ["result", "reason"])
DELIVERED = Counter("courier_delivered_total", "Messages acknowledged by a device", ["priority"])
PROMOTED = Counter("courier_promoted_total", "Delayed or retried messages queued when due")
EXPIRED = Counter("courier_expired_parked_total", "Parked messages expired")
RECLAIMED = Counter("courier_reclaimed_total", "Pending entries taken over from dead consumers")
BURIED = Counter("courier_poison_total", "Poison stream entries dead-lettered")
DEAD = Counter("courier_dead_total", "Messages dead-lettered, by reason", ["reason"])
_LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    300,
)
DELIVER_SECONDS = Histogram(
    "courier_enqueue_to_ack_seconds",
    "Time from enqueue to the device's ack",
    buckets=_LATENCY_BUCKETS,
)
ENQUEUE_TO_DELIVER_SECONDS = Histogram(
    "courier_enqueue_to_deliver_seconds",
    "Time from enqueue to the first push to a device (parked time included)",
    buckets=_LATENCY_BUCKETS,
)
DELIVER_TO_ACK_SECONDS = Histogram(
    "courier_deliver_to_ack_seconds",
    "Time from pushing a message to a connection to that connection's ack (edge)",
    buckets=_LATENCY_BUCKETS,
)
CONNECTIONS = Gauge("courier_connections", "Open WebSocket connections on this process")
FRAMES_OUT = Counter("courier_frames_sent_total", "Frames pushed to sockets", ["type"])
DISCONNECTS = Counter("courier_disconnects_total", "Closed connections, by close code", ["code"])
REDIS_ERRORS = Counter("courier_redis_errors_total", "Redis errors retried", ["loop"])
REDIS_REFUSED = Counter(
    "courier_redis_refused_writes_total",
    "Writes Redis refused because it is out of memory (maxmemory)",
    ["loop"],
)
WEBHOOK_ATTEMPTS = Counter(
    "courier_webhook_attempts_total",
    "Webhook requests, by endpoint and result (ok, http_4xx, http_5xx, timeout, error)",
    ["endpoint", "result"],
)
WEBHOOK_DELIVERED = Counter(
    "courier_webhook_delivered_total", "Events an endpoint answered 2xx to", ["endpoint"]
)
WEBHOOK_DEAD = Counter(
    "courier_webhook_dead_total",
    "Webhook deliveries dead-lettered (attempts used up)",
    ["endpoint"],
)
WEBHOOK_SECONDS = Histogram(
    "courier_webhook_request_seconds",
    "Time from sending a webhook request to its answer (or timeout)",
    ["endpoint"],
    buckets=_LATENCY_BUCKETS,
)
WEBHOOK_IN_FLIGHT = Gauge(
    "courier_webhook_in_flight", "Webhook requests under way in this process", ["endpoint"]
)
EVENTS_FANNED_OUT = Counter(
    "courier_webhook_jobs_total", "Webhook jobs made from events (one per endpoint and event)"
)
ESCALATED = Counter(
    "courier_undelivered_total", "Messages not acked by their escalate_after_seconds"
)


def observe_many(histogram: Histogram, amounts: Sequence[float]) -> None:
    """``histogram.observe(a)`` for each amount (an unlabelled histogram, or one
    child), with one increment per bucket touched and one of the sum instead of two
    per amount: the ack path observes one latency per acknowledged message."""
    if not amounts:
        return
    h: Any = histogram  # prometheus-client's own fields (pinned in requirements/)
    h._raise_if_not_observable()
    bounds = h._upper_bounds
    per_bucket: dict[int, int] = {}
    for a in amounts:  # observe(): the first bucket whose bound is >= the amount
        i = bisect_left(bounds, a)
        per_bucket[i] = per_bucket.get(i, 0) + 1
    h._sum.inc(sum(amounts))
    for i, n in per_bucket.items():
        if i < len(bounds):  # (the last bound is +Inf: every amount has a bucket)
            h._buckets[i].inc(n)
