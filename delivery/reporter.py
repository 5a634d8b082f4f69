"""Report a task's progress from the code that runs it.

Three ways, async or blocking::

    async with producer.task("resume-7", user_id="42", total=3) as task:
        await task.increment(message="parsed page 1")      # 33%
        ...                                                # completed on exit

    @producer.reports_task()
    async def generate(task, prompt): ...
    await generate("prompt", task_id="img-9", user_id="42")

    await producer.task_status("t1", "42", "failed", error="quota exceeded")

An exception inside the block reports ``failed``; a ``cancel`` frame from the user's
browser cancels the block (async form) or sets ``task.cancel_requested()`` (both).
Progress reports closer together than ``min_interval`` are skipped: only the latest
progress matters, and final statuses always go out.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from . import clock
from .exceptions import Conflict
from .fields import TaskField
from .tasks import TaskStatus

if TYPE_CHECKING:
    from .producer import Producer, SyncProducer

log = logging.getLogger(__name__)
T = TypeVar("T")


class _Progress:
    """Shared bookkeeping of both reporters (no I/O)."""

    def __init__(self, task_id: str, user_id: str, total: float | None, min_interval: float):
        self.task_id = task_id
        self.user_id = user_id
        self.total = total
        self.done = 0.0
        self.min_interval = min_interval
        self.last_sent = 0.0
        self.final: TaskStatus | None = None

    def step(self, step: float) -> float | None:
        self.done += step
        if not self.total:
            return None
        return min(100.0, 100.0 * self.done / self.total)

    def due(self) -> bool:
        now = clock.monotonic()
        if now - self.last_sent < self.min_interval:
            return False
        self.last_sent = now
        return True


WATCHER_GRACE = 1.0  # seconds the end of a task block waits for its cancel watcher
WATCH_READ = 0.2  # a read of the cancel channel; the watcher sees the block's end after it
WATCH_READS_PER_CHECK = 5


class TaskReporter:
    """The asyncio reporter (see the module docstring)."""

    def __init__(
        self,
        producer: Producer,
        task_id: str,
        user_id: str,
        *,
        total: float | None = None,
        min_interval: float = 0.2,
        cancel_on_request: bool = True,
    ) -> None:
        self.producer = producer
        self.state = _Progress(task_id, user_id, total, min_interval)
        self.cancel_on_request = cancel_on_request
        self._watcher: asyncio.Task[None] | None = None
        self._done = asyncio.Event()  # the block ended: the watcher stops
        self._cancelled_by_user = False

    @property
    def task_id(self) -> str:
        return self.state.task_id

    async def report(self, status: TaskStatus | str, **fields: Any) -> dict[str, Any]:
        status = TaskStatus(status)
        if status.final:
            self.state.final = status
        return await self.producer.task_status(
            self.state.task_id, self.state.user_id, status, **fields
        )

    async def started(self, message: str | None = None) -> None:
        await self.report(TaskStatus.RUNNING, progress=0.0, message=message)

    async def progress(self, value: float | None = None, message: str | None = None) -> None:
        if self.state.due():
            await self.report(TaskStatus.PROGRESS, progress=value, message=message)

    async def increment(self, step: float = 1, message: str | None = None) -> None:
        await self.progress(self.state.step(step), message)

    async def completed(self, result: Any = None, message: str | None = None) -> None:
        await self.report(TaskStatus.COMPLETED, progress=100.0, result=result, message=message)

    async def failed(self, error: Any, message: str | None = None) -> None:
        await self.report(TaskStatus.FAILED, error=error, message=message)

    async def cancelled(self, message: str | None = None) -> None:
        await self.report(TaskStatus.CANCELLED, message=message)

    async def cancel_requested(self) -> bool:
        key = self.producer.keyspace.user(self.state.user_id, "task", task=self.state.task_id)
        return await self.producer.redis.hget(key, TaskField.CANCEL_REQUESTED) == b"1"

    async def __aenter__(self) -> TaskReporter:
        await self.started()
        if self.cancel_on_request:
            self._watcher = asyncio.create_task(self._watch(asyncio.current_task()))
        return self

    async def _watch(self, target: asyncio.Task[Any] | None) -> None:
        channel = self.producer.keyspace.cancel_channel(self.state.task_id)
        async with self.producer.redis.pubsub() as ps:
            await ps.subscribe(channel)
            reads = 0
            # the stored flag once a second (a cancel published before the subscription)
            while reads % WATCH_READS_PER_CHECK or not await self.cancel_requested():
                reads += 1
                msg = await ps.get_message(ignore_subscribe_messages=True, timeout=WATCH_READ)
                if self._done.is_set():  # redis-py's get_message can swallow a cancel
                    return
                if msg is not None and msg["data"].decode() == self.state.user_id:
                    break  # task ids are per owner: another user's "cancel 123" is not ours
        if self._done.is_set():
            return
        log.info("task %s: cancel requested by its user", self.state.task_id)
        self._cancelled_by_user = True
        if target is not None:
            target.cancel()

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        if self._watcher is not None:
            self._done.set()
            self._watcher.cancel()
            # Bounded: redis-py's PubSub.get_message can swallow the cancel and then
            # wait for ever (seen about once in 30 task blocks); the watcher then ends
            # by the _done flag if its read ever returns, and the block ends anyway.
            await asyncio.wait({self._watcher}, timeout=WATCHER_GRACE)
            if self._watcher.done():
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    self._watcher.result()
        if self.state.final is not None:
            return False
        try:
            if exc is None:
                await self.completed()
            elif isinstance(exc, asyncio.CancelledError):
                await self.cancelled("cancelled by the user" if self._cancelled_by_user else None)
                if self._cancelled_by_user:
                    current = asyncio.current_task()
                    if current is not None:
                        current.uncancel()
                    return True
            else:
                await self.failed(f"{type(exc).__name__}: {exc}")
        except Conflict:
            pass
        return False


class SyncTaskReporter:
    """The blocking reporter, for threads (Celery tasks, thread pools)."""

    def __init__(
        self,
        producer: SyncProducer,
        task_id: str,
        user_id: str,
        *,
        total: float | None = None,
        min_interval: float = 0.2,
    ) -> None:
        self.producer = producer
        self.state = _Progress(task_id, user_id, total, min_interval)

    def report(self, status: TaskStatus | str, **fields: Any) -> dict[str, Any]:
        status = TaskStatus(status)
        if status.final:
            self.state.final = status
        return self.producer.task_status(self.state.task_id, self.state.user_id, status, **fields)

    def started(self, message: str | None = None) -> None:
        self.report(TaskStatus.RUNNING, progress=0.0, message=message)

    def progress(self, value: float | None = None, message: str | None = None) -> None:
        if self.state.due():
            self.report(TaskStatus.PROGRESS, progress=value, message=message)

    def increment(self, step: float = 1, message: str | None = None) -> None:
        self.progress(self.state.step(step), message)

    def completed(self, result: Any = None, message: str | None = None) -> None:
        self.report(TaskStatus.COMPLETED, progress=100.0, result=result, message=message)

    def failed(self, error: Any, message: str | None = None) -> None:
        self.report(TaskStatus.FAILED, error=error, message=message)

    def cancelled(self, message: str | None = None) -> None:
        self.report(TaskStatus.CANCELLED, message=message)

    def cancel_requested(self) -> bool:
        key = self.producer.keyspace.user(self.state.user_id, "task", task=self.state.task_id)
        return self.producer.redis.hget(key, TaskField.CANCEL_REQUESTED) == b"1"

    def __enter__(self) -> SyncTaskReporter:
        self.started()
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if self.state.final is not None:
            return
        try:
            if exc is None:
                self.completed()
            else:
                self.failed(f"{type(exc).__name__}: {exc}")
        except Conflict:
            pass


def async_decorator(
    producer: Producer, **options: Any
) -> Callable[[Callable[..., Awaitable[T]]], Callable[..., Awaitable[T]]]:
    def deco(fn: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
        @functools.wraps(fn)
        async def wrapper(*args: Any, task_id: str, user_id: str, **kwargs: Any) -> T:
            async with TaskReporter(producer, task_id, user_id, **options) as task:
                return await fn(task, *args, **kwargs)
            return None  # type: ignore[return-value]  # cancelled by its user

        return wrapper

    return deco


def sync_decorator(
    producer: SyncProducer, **options: Any
) -> Callable[[Callable[..., T]], Callable[..., T]]:
    def deco(fn: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(fn)
        def wrapper(*args: Any, task_id: str, user_id: str, **kwargs: Any) -> T:
            with SyncTaskReporter(producer, task_id, user_id, **options) as task:
                return fn(task, *args, **kwargs)
            raise AssertionError("unreachable: the sync reporter never swallows exceptions")

        return wrapper

    return deco
