"""Producers: hand messages to Courier from Python (asyncio or any thread).

Validation happens before anything is written (:mod:`delivery.enqueue`): a refused
message leaves no trace. Each accepted message is one atomic script call
(``lua/enqueue.lua``); a batch is one pipelined round trip of one ``enqueue_many`` call
per partition and chunk. Task reports go through :mod:`delivery.tasks` and
:mod:`delivery.reporter`. Every message the producer creates (HTTP enqueues and task
reports go through it too) counts once in ``courier_enqueued_total``.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

import orjson
import redis
import redis.asyncio as aioredis
from pydantic import ValidationError as PydanticValidationError

from . import clock
from .enqueue import Accepted, Enqueue, EnqueueMany, Limits, build, first_error
from .events import EventType
from .exceptions import NotFound, ReplyTimeout, ValidationError, WaitTimeout
from .fields import MessageField
from .keys import RESERVE_TTL_MS, Keyspace, partition_from_id
from .message import MessageIn
from .metrics import ENQUEUED
from .redis_clients import async_client, sync_client
from .replication import check, wait_commands, wait_targets
from .reporter import SyncTaskReporter, TaskReporter, async_decorator, sync_decorator
from .scripts import Scripts
from .settings import Settings
from .subscription import EventSubscription
from .tasks import Task, TaskAnswer, TaskUpdate, build_task, task_result, task_view
from .text import text
from .waits import Waits, wait_blocking

__all__ = ["Accepted", "Limits", "Producer", "SyncProducer"]

log = logging.getLogger(__name__)

_NO_DEFAULT: Any = object()
T = TypeVar("T")


ENQUEUE_CHUNK = 100
"""Messages of one partition per ``enqueue_many`` call: a batch costs one script call
per partition instead of one per message, and no call keeps Redis busy for long."""


def _chunks(plans: Sequence[Sequence[Enqueue]]) -> list[Enqueue | EnqueueMany]:
    """The calls of a batch grouped by partition (order kept within each), chunked:
    ``enqueue`` for a lone message, ``enqueue_many`` for more."""
    by_prefix: dict[str, list[Enqueue]] = {}
    for plan in plans:
        for call in plan:
            by_prefix.setdefault(call.prefix, []).append(call)
    out: list[Enqueue | EnqueueMany] = []
    for prefix, calls in by_prefix.items():
        for k in range(0, len(calls), ENQUEUE_CHUNK):
            chunk = calls[k : k + ENQUEUE_CHUNK]
            out.append(chunk[0] if len(chunk) == 1 else EnqueueMany(prefix, chunk))
    return out


RESERVE_PER_MESSAGE = 512
"""Bytes a message costs Redis besides its payload (hash fields, timeline, stream entry,
index), as a multi-call request reserves them."""


def rooms(keyspace: Keyspace, chunks: Sequence[Enqueue | EnqueueMany]) -> list[tuple[str, int]]:
    """All or nothing across the calls of one request: Redis refuses a write that could
    grow its memory once it is full, and it may fill up between two calls of one
    pipeline (other partitions, other chunks), leaving a request half written. So a
    request of several calls first reserves room for each (a string of about its size
    in that call's partition, :func:`reserve`); each call's script deletes its
    reservation first, which lets it finish even over ``maxmemory``. One refused
    reservation refuses the request: the others are deleted and nothing is written.
    Returns the (key, size) of each call's reservation, named on the calls."""
    token = secrets.token_hex(6)
    out = []
    for i, chunk in enumerate(chunks):
        calls = chunk.calls if isinstance(chunk, EnqueueMany) else [chunk]
        key = keyspace.key(partition_from_id(calls[0].id), "reserve", token=f"{token}.{i}")
        size = sum(len(c.payload) for c in calls) + RESERVE_PER_MESSAGE * len(calls)
        object.__setattr__(chunk, "reservation", key)  # EnqueueMany is frozen
        out.append((key, size))
    return out


def _reserve_commands(pipe: Any, wanted: list[tuple[str, int]]) -> None:
    for key, size in wanted:
        pipe.setrange(key, size - 1, "x")  # a write Redis refuses while it is full
        pipe.pexpire(key, RESERVE_TTL_MS)  # gone by itself if the calls never run


def _refused(wanted: list[tuple[str, int]], results: list[Any]) -> Exception | None:
    errors = [r for r in results[0::2] if isinstance(r, Exception)]
    return errors[0] if errors else None


async def reserve(client: aioredis.Redis, wanted: list[tuple[str, int]]) -> None:
    """Reserve the rooms of :func:`rooms`; raise Redis's refusal (OOM ...) after
    deleting the rooms that were granted."""
    pipe = client.pipeline(transaction=False)
    _reserve_commands(pipe, wanted)
    refused = _refused(wanted, await pipe.execute(raise_on_error=False))
    if refused is not None:
        pipe = client.pipeline(transaction=False)
        for key, _ in wanted:  # one key per command: they live in different slots
            pipe.delete(key)
        await pipe.execute(raise_on_error=False)
        raise refused


def reserve_sync(client: redis.Redis, wanted: list[tuple[str, int]]) -> None:
    """:func:`reserve` for a blocking client."""
    pipe = client.pipeline(transaction=False)
    _reserve_commands(pipe, wanted)
    refused = _refused(wanted, pipe.execute(raise_on_error=False))
    if refused is not None:
        pipe = client.pipeline(transaction=False)
        for key, _ in wanted:
            pipe.delete(key)
        pipe.execute(raise_on_error=False)
        raise refused


def _unpack(
    plans: Sequence[Sequence[Enqueue]], chunks: list[Enqueue | EnqueueMany], answers: list[Any]
) -> list[list[Accepted]]:
    """Map the scripts' answers back to each message and recipient, in order."""
    answer: dict[int, Accepted] = {}
    for chunk, got in zip(chunks, answers, strict=True):
        if isinstance(chunk, EnqueueMany):
            for call, accepted in zip(chunk.calls, got, strict=True):
                answer[id(call)] = accepted
        else:
            answer[id(chunk)] = got
    return [[answer[id(c)] for c in plan] for plan in plans]


def _count(plans: Sequence[Sequence[Enqueue]], out: list[list[Accepted]]) -> None:
    """``courier_enqueued_total``: the messages a batch created, by priority (a repeat
    of an idempotency key creates none)."""
    created: dict[str, int] = {}
    for plan, accepted in zip(plans, out, strict=True):
        for call, a in zip(plan, accepted, strict=True):
            if a.created:
                p = call.opts.priority
                created[p] = created.get(p, 0) + 1
    for p, n in created.items():
        ENQUEUED.labels(p).inc(n)


def _task_counted(call: Task, answer: TaskAnswer) -> TaskAnswer:
    if answer.message is not None and answer.message.created:
        ENQUEUED.labels(call.message.opts.priority).inc()
    return answer


def _message(user_id: str, payload: Any, options: dict[str, Any]) -> dict[str, Any]:
    return {"user_id": user_id, "payload": payload, **options}


class Producer:
    """The asyncio producer. ``await producer.send("42", {"text": "hi"})``."""

    def __init__(
        self, client: aioredis.Redis, *, keyspace: Keyspace, limits: Limits | None = None
    ) -> None:
        self.redis = client
        self.keyspace = keyspace
        self.limits = limits or Limits()
        self._scripts = Scripts(client, events_max_len=self.limits.events_max_len)
        self._waits: Waits | None = None

    @classmethod
    def from_settings(cls, settings: Settings, client: aioredis.Redis | None = None) -> Producer:
        client = client or async_client(
            settings.require_redis_url(),
            cluster=settings.redis_cluster,
            pubsub_key=settings.key_prefix,
        )
        ks = settings.keyspace()
        return cls(client, keyspace=ks, limits=Limits.from_settings(settings))

    async def _replicated(self, chunks: Sequence[Enqueue | EnqueueMany]) -> list[Any]:
        """The enqueue calls, then WAIT on each master written to (SYNC_REPLICAS)."""
        lim = self.limits
        targets = await wait_targets(self.redis, sorted({c.prefix for c in chunks}))
        after = wait_commands(targets, lim.sync_replicas, lim.sync_timeout_ms)
        calls = [self._scripts.call(c) for c in chunks]
        raw, acked, retried = await self._scripts.pipelined_then(calls, after, self.redis)
        check(acked, lim.sync_replicas, retried)
        return [c.parse(r) for c, r in zip(chunks, raw, strict=True)]

    async def send(self, user_id: str, payload: Any, **options: Any) -> Accepted:
        """Enqueue one message for one user; see :class:`MessageIn` for the options."""
        (accepted,) = await self.submit(_message(user_id, payload, options))
        return accepted

    async def submit(self, msg: MessageIn | dict[str, Any]) -> list[Accepted]:
        """Enqueue one message (one id per recipient)."""
        return (await self.submit_many([msg]))[0]

    async def submit_many(self, msgs: Iterable[MessageIn | dict[str, Any]]) -> list[list[Accepted]]:
        """Validate all, then enqueue all in one pipelined round trip."""
        plans = [build(m, keyspace=self.keyspace, limits=self.limits) for m in msgs]
        chunks = _chunks(plans)
        if len(chunks) > 1:  # all or nothing across the calls (see rooms)
            await reserve(self.redis, rooms(self.keyspace, chunks))
        if self.limits.sync_replicas:
            out = _unpack(plans, chunks, await self._replicated(chunks))
        else:
            out = _unpack(plans, chunks, await self._scripts.run_many(chunks, self.redis))
        _count(plans, out)
        if log.isEnabledFor(logging.DEBUG):  # one line per message, to follow it around
            for a in (a for accepted in out for a in accepted):
                log.debug(
                    "message %s %s for %s%s",
                    a.id,
                    a.status,
                    a.user_id,
                    "" if a.created else " (repeat of an idempotency key)",
                    extra={"message_id": a.id, "user_id": a.user_id},
                )
        return out

    # -- tasks (see delivery/reporter.py) ------------------------------------------------
    async def task_status(
        self, task_id: str, user_id: str, status: str, **fields: Any
    ) -> dict[str, Any]:
        """Publish a task's status to its owner (guaranteed) and its topic (live)."""
        call = build_task(
            task_id,
            _task_update(user_id, status, fields),
            keyspace=self.keyspace,
            limits=self.limits,
        )
        return task_result(task_id, _task_counted(call, await self._scripts.run(call)))

    def task(self, task_id: str, user_id: str, **options: Any) -> TaskReporter:
        """``async with producer.task(id, user) as task:`` (see delivery/reporter.py)."""
        return TaskReporter(self, task_id, user_id, **options)

    def reports_task(
        self, **options: Any
    ) -> Callable[[Callable[..., Awaitable[T]]], Callable[..., Awaitable[T]]]:
        """Decorator: the function gets a TaskReporter first; call it with task_id=, user_id=."""
        return async_decorator(self, **options)

    async def get_task(self, task_id: str, user_id: str) -> dict[str, Any]:
        # the client has no decode_responses: bytes (redis-py types either)
        h: dict[bytes, bytes] = await self.redis.hgetall(  # type: ignore[assignment]
            self.keyspace.user(user_id, "task", task=task_id)
        )
        if not h:
            raise NotFound(f"no task {task_id!r} of user {user_id!r}")
        return task_view(h)

    async def active_tasks(self, user_id: str, *, limit: int = 100) -> list[dict[str, Any]]:
        """The user's tasks that have not ended yet, most recently updated first."""
        ids = await self.redis.zrevrange(self.keyspace.user(user_id, "user_tasks"), 0, limit - 1)
        if not ids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for tid in ids:
            pipe.hgetall(self.keyspace.user(user_id, "task", task=text(tid)))
        return [task_view(h) for h in await pipe.execute() if h]

    # -- confirmation requests --------------------------------------------------------------
    async def request(
        self,
        user_id: str,
        payload: Any,
        *,
        timeout: float,  # noqa: ASYNC109  (the wait is the point: a time-limited question)
        default: Any = _NO_DEFAULT,
        **options: Any,
    ) -> Any:
        """Send a message that asks for a reply and wait for the user's answer.

        Works across nodes and reconnects: the reply is stored with the message and
        announced on a channel. After ``timeout`` seconds, returns ``default`` if given,
        else raises :class:`ReplyTimeout` (the message stays deliverable)."""
        accepted = await self.send(user_id, payload, reply_requested=True, **options)
        key = self.keyspace.msg(accepted.id)
        async with self.redis.pubsub() as ps:
            await ps.subscribe(self.keyspace.replies_channel(accepted.id))
            deadline = clock.monotonic() + timeout
            while True:
                stored = await self.redis.hget(key, MessageField.REPLY)
                if stored is not None:
                    return orjson.loads(stored)
                left = deadline - clock.monotonic()
                if left <= 0:
                    break
                msg = await ps.get_message(ignore_subscribe_messages=True, timeout=min(left, 1))
                if msg is not None:
                    return orjson.loads(msg["data"])
        return _timed_out(accepted.id, timeout, default)

    # -- what became of a message (delivery/events.py) --------------------------------------
    async def wait(
        self,
        message_id: str,
        *,
        until: str | Iterable[str] = EventType.DELIVERED,
        timeout: float = 30,  # noqa: ASYNC109  (a time-limited wait is the point)
        default: Any = _NO_DEFAULT,
    ) -> Any:
        """Wait until the message reaches one of the events ``until`` names (or a final
        one: delivered, expired, dead, cancelled); returns the :class:`EventType` it
        reached, whichever process or node made the change. After ``timeout`` seconds,
        returns ``default`` if given, else raises :class:`WaitTimeout`."""
        if self._waits is None:
            self._waits = Waits(self.redis, keyspace=self.keyspace)
        got = await self._waits.wait(message_id, until, timeout)
        return got if got is not None else _wait_timed_out(message_id, timeout, default)

    def events(self, group: str, **options: Any) -> EventSubscription:
        """The events of every partition for the consumer group ``group`` (several
        processes with the same group share them); see :mod:`delivery.subscription` for
        the options (``types``, ``users``, ``consumer``, ``start``, ``auto_ack`` ...)."""
        return EventSubscription(self.redis, keyspace=self.keyspace, group=group, **options)

    async def aclose(self) -> None:
        if self._waits is not None:
            await self._waits.aclose()
        await self.redis.aclose()


class SyncProducer:
    """The blocking producer, safe to share between threads (Celery tasks, thread
    pools, scripts). It has its own connection pool and never touches an event loop.
    """

    def __init__(
        self, client: redis.Redis, *, keyspace: Keyspace, limits: Limits | None = None
    ) -> None:
        self.redis = client
        self.keyspace = keyspace
        self.limits = limits or Limits()
        self._scripts = Scripts(client, events_max_len=self.limits.events_max_len)

    @classmethod
    def from_settings(cls, settings: Settings, client: redis.Redis | None = None) -> SyncProducer:
        client = client or sync_client(
            settings.require_redis_url(),
            cluster=settings.redis_cluster,
            pubsub_key=settings.key_prefix,
        )
        ks = settings.keyspace()
        return cls(client, keyspace=ks, limits=Limits.from_settings(settings))

    def send(self, user_id: str, payload: Any, **options: Any) -> Accepted:
        (accepted,) = self.submit(_message(user_id, payload, options))
        return accepted

    def submit(self, msg: MessageIn | dict[str, Any]) -> list[Accepted]:
        return self.submit_many([msg])[0]

    def submit_many(self, msgs: Iterable[MessageIn | dict[str, Any]]) -> list[list[Accepted]]:
        plans = [build(m, keyspace=self.keyspace, limits=self.limits) for m in msgs]
        chunks = _chunks(plans)
        if len(chunks) > 1:
            reserve_sync(self.redis, rooms(self.keyspace, chunks))
        out = _unpack(plans, chunks, self._scripts.run_many_sync(chunks, self.redis))
        _count(plans, out)
        return out

    def task_status(self, task_id: str, user_id: str, status: str, **fields: Any) -> dict[str, Any]:
        call = build_task(
            task_id,
            _task_update(user_id, status, fields),
            keyspace=self.keyspace,
            limits=self.limits,
        )
        return task_result(task_id, _task_counted(call, self._scripts.run_sync(call)))

    def task(self, task_id: str, user_id: str, **options: Any) -> SyncTaskReporter:
        return SyncTaskReporter(self, task_id, user_id, **options)

    def reports_task(self, **options: Any) -> Callable[[Callable[..., T]], Callable[..., T]]:
        return sync_decorator(self, **options)

    def request(
        self,
        user_id: str,
        payload: Any,
        *,
        timeout: float,
        default: Any = _NO_DEFAULT,
        **options: Any,
    ) -> Any:
        """The blocking form of :meth:`Producer.request`."""
        accepted = self.send(user_id, payload, reply_requested=True, **options)
        key = self.keyspace.msg(accepted.id)
        ps = self.redis.pubsub()
        try:
            ps.subscribe(self.keyspace.replies_channel(accepted.id))
            deadline = clock.monotonic() + timeout
            while True:
                stored = self.redis.hget(key, MessageField.REPLY)
                if stored is not None:
                    return orjson.loads(stored)
                left = deadline - clock.monotonic()
                if left <= 0:
                    break
                msg = ps.get_message(ignore_subscribe_messages=True, timeout=min(left, 1))
                if msg is not None:
                    return orjson.loads(msg["data"])
        finally:
            ps.close()
        return _timed_out(accepted.id, timeout, default)

    def wait(
        self,
        message_id: str,
        *,
        until: str | Iterable[str] = EventType.DELIVERED,
        timeout: float = 30,
        default: Any = _NO_DEFAULT,
    ) -> Any:
        """The blocking form of :meth:`Producer.wait` (one connection while it waits)."""
        got = wait_blocking(self.redis, self.keyspace, message_id, until, timeout)
        return got if got is not None else _wait_timed_out(message_id, timeout, default)

    def close(self) -> None:
        self.redis.close()


def _task_update(user_id: str, status: str, fields: dict[str, Any]) -> TaskUpdate:
    try:
        return TaskUpdate.model_validate({"user_id": user_id, "status": status, **fields})
    except PydanticValidationError as e:
        raise ValidationError(first_error(e)) from None


def _timed_out(message_id: str, timeout: float, default: Any) -> Any:
    if default is _NO_DEFAULT:
        raise ReplyTimeout(f"no reply to {message_id} within {timeout} s")
    log.info("no reply to %s within %s s; using the default", message_id, timeout)
    return default


def _wait_timed_out(message_id: str, timeout: float, default: Any) -> Any:
    if default is _NO_DEFAULT:
        raise WaitTimeout(f"message {message_id} reached none of the awaited events in {timeout} s")
    return default
