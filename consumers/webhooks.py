"""The webhook dispatcher: events go to the endpoints that want them, signed, retried.

Two kinds of loop, each a resilient loop of this process (``courier worker`` and
``courier serve`` run one dispatcher each; any number share the work):

- **fan-out**: the consumer group ``webhooks`` reads the events of every partition; each
  event becomes one job per endpoint that wants its type, in the same script as its ack
  (``wh_fanout``); an endpoint gets the events from when this loop knows it (within
  ``refresh_seconds`` of its creation). A process killed after reading leaves the
  events pending; another takes them over after ``claim_idle``.
- **senders**, one per endpoint: claim due jobs with a lease (a killed sender's job is
  claimed again when the lease ends), POST each (Standard Webhooks headers, see
  :mod:`delivery.webhooks`), at most ``max_in_flight`` at once and each within the
  endpoint's timeout, so a slow receiver holds only its own slots: other endpoints and
  message delivery go on. A 2xx finishes the job; anything else schedules the next
  attempt after an exponential backoff with jitter (Redis server time), until the
  attempts are used up and the job goes to the webhook dead letters.

Receivers see each event at least once, with the same ``webhook-id`` every time.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx
import redis.asyncio as aioredis

from delivery import clock
from delivery.backoff import backoff_seconds
from delivery.events import EventGroup, LifecycleEvent, event_id
from delivery.keys import Keyspace
from delivery.metrics import (
    EVENTS_FANNED_OUT,
    WEBHOOK_ATTEMPTS,
    WEBHOOK_DEAD,
    WEBHOOK_DELIVERED,
    WEBHOOK_IN_FLIGHT,
    WEBHOOK_SECONDS,
)
from delivery.settings import Settings
from delivery.webhook_store import FailOutcome, Job, WebhookStore
from delivery.webhooks import Endpoint, signed_headers

from .resilience import forever, retrying

log = logging.getLogger(__name__)

GROUP = "webhooks"
FAN_OUT_REST = 0.02  # seconds between reads of the events that were not full
NO_ENDPOINT_REST = 0.1  # seconds between moves of the group past the events, no endpoint


@dataclass(frozen=True)
class WebhookConfig:
    timeout_seconds: float = 10.0  # an endpoint's default
    max_in_flight: int = 8  # an endpoint's default, per process
    max_attempts: int = 16
    retry_base_seconds: float = 5.0
    retry_max_seconds: float = 3600.0
    read_count: int = 200
    block_ms: int = 1000
    claim_idle_ms: int = 30_000
    refresh_seconds: float = 2.0  # endpoints added by the admin API show up this soon
    idle_seconds: float = 1.0  # longest rest of a sender with nothing due

    @classmethod
    def from_settings(cls, s: Settings) -> WebhookConfig:
        return cls(
            timeout_seconds=s.webhook_timeout_seconds,
            max_in_flight=s.webhook_max_in_flight,
            max_attempts=s.webhook_max_attempts,
            retry_base_seconds=s.webhook_retry_base_seconds,
            retry_max_seconds=s.webhook_retry_max_seconds,
            claim_idle_ms=int(s.claim_idle_seconds * 1000),
        )

    def timeout(self, ep: Endpoint) -> float:
        return ep.timeout_seconds or self.timeout_seconds

    def lease_ms(self, ep: Endpoint) -> int:
        """How long a claimed job is held: longer than its request may take."""
        return int((2 * self.timeout(ep) + 5) * 1000)


@dataclass
class _Sender:
    """One endpoint's sending in this process."""

    ep: Endpoint
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    requests: set[asyncio.Task[None]] = field(default_factory=set)
    loop: asyncio.Task[None] | None = None
    next_partition: int = 0


def _result(code: int) -> str:
    return "ok" if 200 <= code < 300 else f"http_{code // 100}xx"


class WebhookDispatcher:
    def __init__(
        self,
        client: aioredis.Redis,
        *,
        keyspace: Keyspace,
        store: WebhookStore,
        consumer: str,
        config: WebhookConfig | None = None,
        partitions: Sequence[int] | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.redis = client
        self.keyspace = keyspace
        self.store = store
        self.config = config or WebhookConfig()
        self.partitions = list(range(keyspace.partitions) if partitions is None else partitions)
        self.group = EventGroup(
            client,
            keyspace=keyspace,
            group=GROUP,
            consumer=consumer,
            partitions=self.partitions,
            claim_idle_ms=self.config.claim_idle_ms,
        )
        self._http = http
        self._own_http = http is None
        self.senders: dict[str, _Sender] = {}
        self._stop = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []
        self._grouped = False
        self._next_claim = 0.0

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            # redirects are not followed: a receiver answers 2xx where it was registered
            # (no timeout of its own: each request has its endpoint's, see send())
            self._http = httpx.AsyncClient(
                follow_redirects=False, timeout=None, limits=httpx.Limits(max_connections=None)
            )
        return self._http

    async def start(self) -> None:
        self._stop.clear()
        await self.group.ensure()
        self._grouped = True
        await self.refresh()
        self._loops = [
            asyncio.create_task(forever("webhook-endpoints", self._refresh_step, self._stop)),
            asyncio.create_task(forever("webhook-fan-out", self.fan_out_step, self._stop)),
        ]
        log.info("webhook dispatcher started: %d endpoints", len(self.senders))

    async def stop(self) -> None:
        self._stop.set()
        for s in list(self.senders.values()):
            await self._drop(s)
        for t in self._loops:
            t.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        self._loops.clear()
        if self._own_http and self._http is not None:
            await self._http.aclose()
            self._http = None

    # -- endpoints ------------------------------------------------------------------------
    async def _refresh_step(self) -> float:
        await self.refresh()
        return self.config.refresh_seconds

    async def refresh(self) -> None:
        """Start a sender for each enabled endpoint, stop those of endpoints gone."""
        current = {ep.id: ep for ep in await self.store.endpoints() if ep.enabled}
        for eid in set(self.senders) - set(current):
            await self._drop(self.senders.pop(eid))
        for eid, ep in current.items():
            s = self.senders.get(eid)
            if s is None:
                s = self.senders[eid] = _Sender(ep)
                s.loop = asyncio.create_task(
                    forever(f"webhook-{eid}", functools.partial(self.send_step, s), s.stop),
                    name=f"webhook-{eid}",
                )
            s.ep = ep  # a changed URL, secret or cap applies to the next request

    async def _drop(self, s: _Sender) -> None:
        s.stop.set()
        s.wake.set()
        tasks = [*s.requests, *([s.loop] if s.loop else [])]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- fan-out --------------------------------------------------------------------------
    async def fan_out_step(self) -> float | None:
        """Read events (reclaiming a dead consumer's now and then) and make their jobs.
        With no endpoint the group is moved past the events every NO_ENDPOINT_REST
        seconds without reading them: an endpoint added later gets the events from then
        on, not a backlog (COURIER_WEBHOOK_DELIVERY=false saves even that where no
        webhooks are used)."""
        if not self._grouped:
            await self.group.ensure()
            self._grouped = True
        events: list[LifecycleEvent] = []
        if clock.monotonic() >= self._next_claim:
            events = await self.group.reclaim(count=self.config.read_count)
            self._next_claim = clock.monotonic() + self.config.claim_idle_ms / 2000
        if events:
            await self.fan_out(events)
            return None
        if not self.senders:  # nothing would make a job: skip the events unread
            await self.group.skip_to_end()
            return NO_ENDPOINT_REST
        raw = await self.group.read_raw(count=self.config.read_count, block_ms=self.config.block_ms)
        if self.senders:  # as they are now, after the read (an endpoint added meanwhile)
            await self.fan_out([LifecycleEvent.from_entry(p, e, f) for p, e, f in raw])
        else:  # no endpoint: the events are only acked, never parsed
            await self.ack_only([(p, e) for p, e, _ in raw])
        return self._rest(len(raw))

    def _rest(self, n: int) -> float | None:
        """After a read that was not full, a pause (FAN_OUT_REST) in which the next
        events gather: one read and one round trip for many of them, where at a few
        thousand messages a second each read woke for a handful."""
        return FAN_OUT_REST if 0 < n < self.config.read_count else None

    async def ack_only(self, ids: Sequence[tuple[int, str]]) -> None:
        """Ack events no endpoint wants, read without parsing them (partition, entry
        id): the same script as :meth:`fan_out`, making no job."""
        by_part: dict[int, list[tuple[str, str, bytes, list[str]]]] = {}
        for p, entry_id in ids:
            by_part.setdefault(p, []).append((entry_id, event_id(p, entry_id), b"", []))
        await self.store.fan_out_many(GROUP, by_part)

    async def fan_out(self, events: Sequence[LifecycleEvent]) -> int:
        by_part: dict[int, list[tuple[str, str, bytes, list[str]]]] = {}
        woken: set[str] = set()
        for e in events:
            wants = [s.ep.id for s in self.senders.values() if s.ep.wants(e.type)]
            woken.update(wants)
            # no endpoint wants it: only its ack, no JSON body (wh_fanout.lua reads none)
            body = e.body() if wants else b""
            by_part.setdefault(e.partition, []).append((e.entry_id, e.id, body, wants))
        made = await self.store.fan_out_many(GROUP, by_part)
        EVENTS_FANNED_OUT.inc(made)
        for eid in woken:
            if eid in self.senders:
                self.senders[eid].wake.set()
        return made

    # -- sending --------------------------------------------------------------------------
    async def send_step(self, s: _Sender) -> float | None:
        """Claim what the endpoint's free slots can take and send it; rest until the
        next due job (or new jobs) when nothing is due."""
        cap = s.ep.max_in_flight or self.config.max_in_flight
        if len(s.requests) >= cap:
            await asyncio.wait(s.requests, timeout=1, return_when=asyncio.FIRST_COMPLETED)
            return None
        s.wake.clear()
        jobs, rest = await self._claim(s, cap - len(s.requests))
        for job in jobs:
            t = asyncio.create_task(self.send(s, job), name=f"webhook-{s.ep.id}-{job.event_id}")
            s.requests.add(t)
            t.add_done_callback(s.requests.discard)
        if jobs:
            return None
        try:
            await asyncio.wait_for(s.wake.wait(), rest)
        except TimeoutError:
            pass
        return None

    async def _claim(self, s: _Sender, limit: int) -> tuple[list[Job], float]:
        """Due jobs from the partitions in turn (fairly: each pass starts one further)."""
        jobs: list[Job] = []
        rest = self.config.idle_seconds
        n = len(self.partitions)
        lease = self.config.lease_ms(s.ep)
        for k in range(n):
            p = self.partitions[(s.next_partition + k) % n]
            now, nxt, got = await self.store.claim(
                s.ep.id, p, limit=limit - len(jobs), lease_ms=lease
            )
            jobs += got
            if nxt >= 0:
                rest = min(rest, max(nxt - now, 0) / 1000)
            if len(jobs) >= limit:
                break
        s.next_partition = (s.next_partition + 1) % n
        return jobs, rest

    async def send(self, s: _Sender, job: Job) -> None:
        """One attempt: POST, then finish or reschedule the job."""
        ep = s.ep
        timeout = self.config.timeout(ep)
        headers = signed_headers(ep.secret, job.event_id, int(clock.wall()), job.body)
        started = clock.monotonic()
        WEBHOOK_IN_FLIGHT.labels(ep.id).inc()
        code = 0
        try:
            async with asyncio.timeout(timeout):  # the whole exchange, however slow the body
                async with self.http.stream("POST", ep.url, content=job.body, headers=headers) as r:
                    code = r.status_code  # the status is the answer: the body is not read
            result = _result(code)
            answer = f"HTTP {code}"
        except TimeoutError:
            result, answer = "timeout", f"no answer within {timeout:g} s"
        except httpx.HTTPError as e:
            result, answer = "error", f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        finally:
            WEBHOOK_IN_FLIGHT.labels(ep.id).dec()
        latency = clock.monotonic() - started
        WEBHOOK_SECONDS.labels(ep.id).observe(latency)
        WEBHOOK_ATTEMPTS.labels(ep.id, result).inc()
        await self._settle(ep, job, result == "ok", answer, latency)

    async def _settle(self, ep: Endpoint, job: Job, ok: bool, answer: str, latency: float) -> None:
        cfg = self.config
        dead = False
        error = "" if ok else answer
        if ok:
            await retrying("webhook-done", lambda: self.store.done(job))
            WEBHOOK_DELIVERED.labels(ep.id).inc()
            log.debug("webhook %s got event %s", ep.id, job.event_id)
        else:
            delay = backoff_seconds(
                job.attempts + 1, base=cfg.retry_base_seconds, cap=cfg.retry_max_seconds
            )
            outcome = await retrying(
                "webhook-fail",
                lambda: self.store.fail(
                    job, delay_ms=int(delay * 1000), error=error, max_attempts=cfg.max_attempts
                ),
            )
            dead = outcome is FailOutcome.DEAD
            if dead:
                WEBHOOK_DEAD.labels(ep.id).inc()
                log.warning(
                    "webhook %s: event %s dead after %d attempts (%s)",
                    ep.id,
                    job.event_id,
                    job.attempts + 1,
                    error,
                )
            else:
                log.info(
                    "webhook %s: event %s attempt %d failed (%s); next in %.0f s",
                    ep.id,
                    job.event_id,
                    job.attempts + 1,
                    error,
                    delay,
                )
        await retrying(
            "webhook-stat",
            lambda: self.store.record(
                ep.id,
                ok=ok,
                at_ms=clock.wall_ms(),
                latency_ms=int(latency * 1000),
                result=answer,
                dead=dead,
            ),
        )
