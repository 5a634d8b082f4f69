"""Keep a loop alive across Redis outages (tenacity): retry a step with exponential
backoff and jitter, forever, logging once per failure."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis import exceptions as rex
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_exponential_jitter

from delivery.metrics import REDIS_ERRORS, REDIS_REFUSED

log = logging.getLogger(__name__)
T = TypeVar("T")

Step = Callable[[], Awaitable[float | None]]
"""One turn of a loop: it answers how long to rest before the next (None: none)."""


# redis-py names these errors by class (and strips their code from the text); the
# texts are what a script's error carries on Redis 6.2, or a pipeline's.
_GOING_AWAY = (
    rex.ReadOnlyError,  # a failover made our primary a replica
    rex.ClusterError,  # CLUSTERDOWN, MASTERDOWN, and redis-py's "TTL exhausted."
    rex.TryAgainError,  # a multi-key command while its slot migrates
    rex.AskError,  # ASK / MOVED that outlived redis-py's redirections (a slot moving)
    rex.SlotNotCoveredError,  # a slot map read while a master fails over
    rex.NoScriptError,  # Redis restarted and lost its script cache mid-pipeline
)
_GOING_AWAY_TEXT = (
    "LOADING",
    "MASTERDOWN",
    "TRYAGAIN",
    "CLUSTERDOWN",
    "READONLY",
    "NOSCRIPT",
    "ASK ",
    "MOVED ",
)
# redis-py's RedisClusterException (not a RedisError) for a cluster it cannot reach
_CLUSTER_AWAY_TEXT = ("Redis Cluster cannot be connected", "No targets were found")


def redis_full(exc: BaseException) -> bool:
    """Redis refused a write because it is out of memory (``maxmemory`` with the
    ``noeviction`` policy Courier needs): transient, it passes when memory frees."""
    if isinstance(exc, rex.OutOfMemoryError):
        return True
    return isinstance(exc, rex.ResponseError) and "OOM command not allowed" in str(exc)


def transient(exc: BaseException) -> bool:
    """Errors that go away by themselves: Redis restarting, failing over, full, or out
    of reach. Nothing they interrupted counts against a message (no attempt, no
    poison delivery: see ``Worker``)."""
    if isinstance(exc, (rex.ConnectionError, rex.TimeoutError, OSError, *_GOING_AWAY)):
        return True  # BusyLoadingError (LOADING) is a ConnectionError
    if isinstance(exc, rex.RedisClusterException):
        return str(exc).startswith(_CLUSTER_AWAY_TEXT)
    if redis_full(exc):
        return True
    if isinstance(exc, rex.ResponseError):
        return str(exc).startswith(_GOING_AWAY_TEXT)
    return False


async def retrying(name: str, step: Callable[[], Awaitable[T]]) -> T:
    """Run ``step`` once, retrying transient Redis errors until it succeeds."""

    def _log(state: RetryCallState) -> None:
        REDIS_ERRORS.labels(name).inc()
        exc = state.outcome.exception() if state.outcome else None
        if exc is not None and redis_full(exc):
            REDIS_REFUSED.labels(name).inc()
        log.warning("%s: redis unavailable (%s); retry %d", name, exc, state.attempt_number)

    async for attempt in AsyncRetrying(
        retry=retry_if_exception(transient),
        wait=wait_exponential_jitter(multiplier=0.05, max=2.0, jitter=0.05),
        before_sleep=_log,
        reraise=True,
    ):
        with attempt:
            return await step()
    raise AssertionError("unreachable: AsyncRetrying returns or raises")  # pragma: no cover


async def forever(
    name: str,
    step: Step,
    stop: asyncio.Event,
) -> None:
    """Call ``step`` until ``stop`` is set; it returns how long to rest (None: none)."""
    while not stop.is_set():
        try:
            rest = await retrying(name, step)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed; going on in 1 s", name)
            rest = 1.0
        if rest:
            try:
                await asyncio.wait_for(stop.wait(), timeout=float(rest))
            except TimeoutError:
                pass
