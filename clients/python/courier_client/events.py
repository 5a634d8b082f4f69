"""The client's events: ``client.on(name, handler)``; a handler that returns an
awaitable runs as a task. A handler that raises is logged and reported as an
``error`` event; it never stops the client."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from typing import Any

from .message import ClientEvent

log = logging.getLogger("courier_client")

Handler = Callable[[Any], Any]

EVENTS = frozenset(
    {
        "state",  # State
        "connecting",  # the attempt's number (1, 2, ...)
        "connected",  # the `connected` frame
        "disconnected",  # Disconnected(code, reason, reconnect)
        "reconnecting",  # the delay, seconds
        "refreshed",  # the new exp
        "duplicate",  # the frame of a message handed over before
        "error",  # ClientEvent
        "topic",  # live frames, as the server sent them
        "tasks",
        "broadcast",
        "subscribed",
        "unsubscribed",
    }
)


class Emitter:
    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = {}
        self._running: set[asyncio.Future[Any]] = set()  # handlers' tasks, kept alive

    def on(self, event: str, handler: Handler) -> Callable[[], None]:
        if event not in EVENTS:
            raise ValueError(f"unknown event {event!r}; one of {sorted(EVENTS)}")
        self._handlers.setdefault(event, []).append(handler)
        return lambda: self._handlers[event].remove(handler)

    def emit(self, event: str, value: Any) -> None:
        for handler in list(self._handlers.get(event, ())):
            try:
                result = handler(value)
                if inspect.isawaitable(result):
                    task = asyncio.ensure_future(result)
                    self._running.add(task)
                    task.add_done_callback(self._running.discard)
            except Exception as e:
                log.warning("courier: a %r handler raised", event, exc_info=True)
                if event != "error":
                    self.report(ClientEvent("handler", type(e).__name__, str(e)))

    def report(self, event: ClientEvent) -> None:
        log.info("courier: %s %s: %s", event.kind, event.code, event.detail)
        self.emit("error", event)
