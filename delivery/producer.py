"""Producers: hand messages to Courier from Python (asyncio or any thread).

Validation happens before anything is written: a refused message leaves no trace.
Each accepted message is one atomic script call (``lua/enqueue.lua``); a batch is one
pipelined round trip.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson
import redis
import redis.asyncio as aioredis
from pydantic import ValidationError as PydanticValidationError

from .exceptions import NotFound, PayloadTooLarge, ReplyTimeout, ValidationError
from .keys import Keyspace, partition_of
from .message import MessageIn, Priority, id_in
from .redis_clients import async_client, sync_client
from .scripts import Call, Scripts
from .settings import Settings

if TYPE_CHECKING:
    from .reporter import SyncTaskReporter, TaskReporter

log = logging.getLogger(__name__)

USER_INDEX_CAP = 10_000
_NO_DEFAULT: Any = object()


@dataclass(frozen=True)
class Limits:
    """What a producer enforces; built from :class:`Settings` at the edge."""

    max_payload_bytes: int = 65536
    default_ttl_seconds: int = 604800
    max_ttl_seconds: int = 30 * 86400
    max_attempts: int = 5
    retention_seconds: int = 86400
    max_recipients: int = 1000

    @classmethod
    def from_settings(cls, s: Settings) -> Limits:
        return cls(
            max_payload_bytes=s.max_payload_bytes,
            default_ttl_seconds=s.default_ttl_seconds,
            max_ttl_seconds=s.max_ttl_seconds,
            max_attempts=s.max_attempts,
            retention_seconds=s.retention_seconds,
            max_recipients=s.max_recipients,
        )


@dataclass(frozen=True)
class Accepted:
    """What the producer answers for each recipient: the message id and its status."""

    id: str
    user_id: str
    status: str
    created: bool = True

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "user_id": self.user_id, "status": self.status}


class _Call(NamedTuple):
    """One recipient's script call: ``args`` is what ``enqueue.lua`` takes."""

    prefix: str
    id: str
    user_id: str
    payload: bytes
    opts: tuple[Any, ...]
    """enqueue.lua's arguments 4 to 16 (priority .. keep), one tuple shared by all the
    recipients of a message; ``enqueue_many`` sends each distinct tuple once."""

    @property
    def args(self) -> list[Any]:
        return [self.id, self.user_id, self.payload, *self.opts]


def build(
    msg: MessageIn | dict[str, Any], *, keyspace: Keyspace, limits: Limits, keep: bool = False
) -> list[_Call]:
    """Validate one message and turn it into one script call per recipient."""
    if not isinstance(msg, MessageIn):
        try:
            msg = MessageIn.model_validate(msg)
        except PydanticValidationError as e:
            raise ValidationError(_first_error(e)) from None
    payload = orjson.dumps(msg.payload)
    if len(payload) > limits.max_payload_bytes:
        raise PayloadTooLarge(
            f"payload is {len(payload)} bytes; the limit is {limits.max_payload_bytes}"
        )
    ttl = msg.ttl_seconds if msg.ttl_seconds is not None else limits.default_ttl_seconds
    if ttl > limits.max_ttl_seconds:
        raise ValidationError(f"ttl_seconds may be at most {limits.max_ttl_seconds}")
    if msg.delay_seconds is not None and msg.delay_seconds >= ttl:
        raise ValidationError("delay_seconds must be shorter than ttl_seconds")
    deliver_at = _epoch_ms(msg.deliver_at) if msg.deliver_at is not None else -1
    # (the local clock only validates here; due times come from Redis server time)
    if deliver_at != -1 and deliver_at - time.time() * 1000 >= ttl * 1000:
        raise ValidationError("deliver_at must come before the message expires (ttl_seconds)")
    targets = msg.targets()
    if len(targets) > limits.max_recipients:
        raise ValidationError(f"at most {limits.max_recipients} recipients per message")
    opts = (
        str(Priority(msg.priority)),
        ttl * 1000,
        int(msg.delay_seconds * 1000) if msg.delay_seconds is not None else -1,
        deliver_at,
        msg.max_attempts or limits.max_attempts,
        msg.idempotency_key or "",
        msg.collapse_key or "",
        msg.topic or "",
        "1" if msg.reply_requested else "0",
        limits.retention_seconds * 1000,
        (limits.max_ttl_seconds + limits.retention_seconds) * 1000,
        USER_INDEX_CAP,
        "1" if keep else "0",
    )
    calls = []
    for u in targets:
        p = partition_of(u, keyspace.partitions)  # once: it names both the keys and the id
        calls.append(_Call(keyspace.part(p), id_in(p), u, payload, opts))
    return calls


def _epoch_ms(dt: datetime) -> int:
    if dt.tzinfo is None:
        raise ValidationError("deliver_at needs a time zone (e.g. 2026-01-01T10:00:00Z)")
    return int(dt.timestamp() * 1000)


def _first_error(e: PydanticValidationError) -> str:
    err = e.errors()[0]
    where = ".".join(str(x) for x in err["loc"]) or "body"
    return f"{where}: {err['msg']}"


def _accepted(call: _Call, result: Sequence[Any]) -> Accepted:
    mid, status, created = result
    return Accepted(_s(mid), call.user_id, _s(status), bool(int(created)))


ENQUEUE_CHUNK = 100
"""Messages of one partition per ``enqueue_many`` call: a batch costs one script call
per partition instead of one per message, and no call keeps Redis busy for long."""


def _chunks(plans: Sequence[Sequence[_Call]]) -> list[tuple[str, list[_Call]]]:
    """The calls of a batch grouped by partition (order kept within each), chunked."""
    by_prefix: dict[str, list[_Call]] = {}
    for plan in plans:
        for call in plan:
            by_prefix.setdefault(call.prefix, []).append(call)
    return [
        (prefix, calls[k : k + ENQUEUE_CHUNK])
        for prefix, calls in by_prefix.items()
        for k in range(0, len(calls), ENQUEUE_CHUNK)
    ]


def _script_call(scripts: Scripts, prefix: str, calls: Sequence[_Call]) -> Call:
    if len(calls) == 1:
        return scripts.enqueue, [prefix], calls[0].args
    return scripts.enqueue_many, [prefix], many_args(calls)


def many_args(calls: Sequence[_Call]) -> list[Any]:
    """``enqueue_many``'s arguments: the distinct option sets, then 4 per message (a
    batch's messages mostly share their options: 4 arguments each instead of 16)."""
    sets: dict[tuple[Any, ...], int] = {}
    rows: list[Any] = []
    for c in calls:
        n = sets.get(c.opts)
        if n is None:
            n = sets[c.opts] = len(sets) + 1
        rows += (c.id, c.user_id, c.payload, n)
    args: list[Any] = [len(sets)]
    for opts in sets:
        args += opts
    args += rows
    return args


def _unpack(
    plans: Sequence[Sequence[_Call]], chunks: list[tuple[str, list[_Call]]], results: list[Any]
) -> list[list[Accepted]]:
    """Map the scripts' answers back to each message and recipient, in order."""
    answer: dict[int, Accepted] = {}
    for (_, calls), res in zip(chunks, results, strict=True):
        rows = [res] if len(calls) == 1 else [res[k : k + 3] for k in range(0, len(res), 3)]
        for call, row in zip(calls, rows, strict=True):
            answer[id(call)] = _accepted(call, row)
    return [[answer[id(c)] for c in plan] for plan in plans]


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


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
        self._scripts = Scripts(client)

    @classmethod
    def from_settings(cls, settings: Settings, client: aioredis.Redis | None = None) -> Producer:
        client = client or async_client(
            settings.require_redis_url(),
            cluster=settings.redis_cluster,
            pubsub_key=settings.key_prefix,
        )
        ks = Keyspace(settings.key_prefix, settings.partitions)
        return cls(client, keyspace=ks, limits=Limits.from_settings(settings))

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
        calls = [_script_call(self._scripts, prefix, cs) for prefix, cs in chunks]
        out = _unpack(plans, chunks, await self._scripts.pipelined(calls, self.redis))
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
        from .tasks import TaskUpdate, build_task, task_result

        call = build_task(
            task_id,
            _task_update(TaskUpdate, user_id, status, fields),
            keyspace=self.keyspace,
            limits=self.limits,
        )
        return task_result(task_id, await self._scripts.task(keys=[call.prefix], args=call.args))

    def task(self, task_id: str, user_id: str, **options: Any) -> TaskReporter:
        """``async with producer.task(id, user) as task:`` (see delivery/reporter.py)."""
        from .reporter import TaskReporter

        return TaskReporter(self, task_id, user_id, **options)

    def reports_task(self, **options: Any) -> Any:
        """Decorator: the function gets a TaskReporter first; call it with task_id=, user_id=."""
        from .reporter import async_decorator

        return async_decorator(self, **options)

    async def get_task(self, task_id: str, user_id: str) -> dict[str, Any]:
        from .tasks import task_view

        h: dict[bytes, bytes] = await self.redis.hgetall(  # type: ignore[assignment]
            self.keyspace.user(user_id, "task", task=task_id)
        )
        if not h:
            raise NotFound(f"no task {task_id!r} of user {user_id!r}")
        return task_view(h)

    async def active_tasks(self, user_id: str, *, limit: int = 100) -> list[dict[str, Any]]:
        """The user's tasks that have not ended yet, most recently updated first."""
        from .tasks import task_view

        ids = await self.redis.zrevrange(self.keyspace.user(user_id, "user_tasks"), 0, limit - 1)
        if not ids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for tid in ids:
            pipe.hgetall(self.keyspace.user(user_id, "task", task=_s(tid)))
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
            deadline = time.monotonic() + timeout
            while True:
                stored = await self.redis.hget(key, "rp")
                if stored is not None:
                    return orjson.loads(stored)
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                msg = await ps.get_message(ignore_subscribe_messages=True, timeout=min(left, 1))
                if msg is not None:
                    return orjson.loads(msg["data"])
        return _timed_out(accepted.id, timeout, default)

    async def aclose(self) -> None:
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
        self._scripts = Scripts(client)

    @classmethod
    def from_settings(cls, settings: Settings, client: redis.Redis | None = None) -> SyncProducer:
        client = client or sync_client(
            settings.require_redis_url(),
            cluster=settings.redis_cluster,
            pubsub_key=settings.key_prefix,
        )
        ks = Keyspace(settings.key_prefix, settings.partitions)
        return cls(client, keyspace=ks, limits=Limits.from_settings(settings))

    def send(self, user_id: str, payload: Any, **options: Any) -> Accepted:
        (accepted,) = self.submit(_message(user_id, payload, options))
        return accepted

    def submit(self, msg: MessageIn | dict[str, Any]) -> list[Accepted]:
        return self.submit_many([msg])[0]

    def submit_many(self, msgs: Iterable[MessageIn | dict[str, Any]]) -> list[list[Accepted]]:
        plans = [build(m, keyspace=self.keyspace, limits=self.limits) for m in msgs]
        chunks = _chunks(plans)
        calls = [_script_call(self._scripts, prefix, cs) for prefix, cs in chunks]
        return _unpack(plans, chunks, self._scripts.pipelined_sync(calls, self.redis))

    def task_status(self, task_id: str, user_id: str, status: str, **fields: Any) -> dict[str, Any]:
        from .tasks import TaskUpdate, build_task, task_result

        call = build_task(
            task_id,
            _task_update(TaskUpdate, user_id, status, fields),
            keyspace=self.keyspace,
            limits=self.limits,
        )
        return task_result(task_id, self._scripts.task(keys=[call.prefix], args=call.args))

    def task(self, task_id: str, user_id: str, **options: Any) -> SyncTaskReporter:
        from .reporter import SyncTaskReporter

        return SyncTaskReporter(self, task_id, user_id, **options)

    def reports_task(self, **options: Any) -> Any:
        from .reporter import sync_decorator

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
            deadline = time.monotonic() + timeout
            while True:
                stored = self.redis.hget(key, "rp")
                if stored is not None:
                    return orjson.loads(stored)
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                msg = ps.get_message(ignore_subscribe_messages=True, timeout=min(left, 1))
                if msg is not None:
                    return orjson.loads(msg["data"])
        finally:
            ps.close()
        return _timed_out(accepted.id, timeout, default)

    def close(self) -> None:
        self.redis.close()


def _task_update(cls: Any, user_id: str, status: str, fields: dict[str, Any]) -> Any:
    try:
        return cls(user_id=user_id, status=status, **fields)
    except PydanticValidationError as e:
        raise ValidationError(_first_error(e)) from None


def _timed_out(message_id: str, timeout: float, default: Any) -> Any:
    if default is _NO_DEFAULT:
        raise ReplyTimeout(f"no reply to {message_id} within {timeout} s")
    log.info("no reply to %s within %s s; using the default", message_id, timeout)
    return default
