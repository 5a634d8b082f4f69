"""The Courier client for Python: connect with a token, hand the app each message
once, ack it, keep the connection alive and come back after every drop.

    async with CourierClient("ws://127.0.0.1:8000/v1/ws", get_token=fetch) as client:
        async for msg in client.messages():
            show(msg.payload)          # acked when you ask for the next one

What lives across reconnects is here (the messages not taken yet, the ids seen, the
acks not sent, the topics, the frames queued while offline); what lives for one
connection is a :class:`~courier_client.session.Session`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Literal

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.typing import Subprotocol

from .acks import Acks
from .backoff import Backoff
from .dedupe import SeenIds
from .errors import ClientClosed, CourierClientError, NoToken, refusal
from .events import EVENTS, Emitter, Handler
from .message import ClientEvent, Disconnected, Message, State
from .session import Session
from .urls import with_query, ws_url

log = logging.getLogger("courier_client")

TokenSource = Callable[[], str | Awaitable[str]]
Auth = Literal["subprotocol", "header", "query"]
REFUSED = (4401, 4403)  # retried once with a fresh token, then raised


class CourierClient:
    """A connection to Courier's WebSocket edge that survives drops.

    ``get_token`` (sync or async) is called for every connect and every refresh; a
    fixed ``token`` works too, but then the client stops when it expires.
    ``ack="manual"``: call :meth:`Message.ack` yourself. ``refresh``: send a fresh
    token ``refresh_margin`` s before ``exp`` (at most half its lifetime); False lets the
    server close the connection at ``exp`` (4401) and reconnects. Delays are seconds.
    """

    def __init__(
        self,
        url: str,
        *,
        get_token: TokenSource | None = None,
        token: str | None = None,
        user: str | None = None,
        device: str | None = None,
        auth: Auth = "subprotocol",
        ack: Literal["auto", "manual"] = "auto",
        ack_delay: float = 0.02,
        min_reconnect_delay: float = 0.5,
        max_reconnect_delay: float = 20.0,
        stable_after: float = 5.0,
        connect_timeout: float = 10.0,
        pong_timeout: float = 10.0,
        refresh: bool = True,
        refresh_margin: float = 30.0,
        refresh_timeout: float = 10.0,
        dedupe_size: int = 10_000,
        outbox_size: int = 1000,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if (get_token is None) == (token is None):
            raise ValueError("give get_token (a function) or token (a fixed one)")
        if ack not in ("auto", "manual") or auth not in ("subprotocol", "header", "query"):
            raise ValueError("ack is 'auto' or 'manual'; auth 'subprotocol', 'header' or 'query'")
        self.url = ws_url(url, user=user, device=device)
        self.auth = auth
        self.ack_mode = ack
        self.ack_delay = ack_delay
        self.connect_timeout = connect_timeout
        self.pong_timeout = pong_timeout
        self.refresh = refresh
        self.refresh_margin = refresh_margin
        self.refresh_timeout = refresh_timeout
        self.outbox_size = outbox_size
        self._get_token = get_token
        self._token = token
        self._backoff = Backoff(
            base=min_reconnect_delay, cap=max_reconnect_delay, stable_after=stable_after, rand=rand
        )
        self._state = State.DISCONNECTED
        self.events = Emitter()
        self._queue: asyncio.Queue[Message | None] = asyncio.Queue()
        self._queued: set[str] = set()  # ids in the queue, not taken yet
        self._seen = SeenIds(dedupe_size)  # ids taken by the app
        self._acks = Acks(ack_delay, lambda: self._session)
        self._outbox: deque[dict[str, Any]] = deque()  # reply/cancel frames while offline
        self._topics: dict[str, None] = {}  # subscribed, in order
        self._session: Session | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._up = asyncio.Event()
        self._done = False
        self._consuming = False
        self._refused = False  # the last connection was refused (4401/4403)
        self.error: CourierClientError | None = None  # why the client stopped
        self.attempts = 0  # connection attempts so far

    # -- lifecycle ------------------------------------------------------------------------
    async def __aenter__(self) -> CourierClient:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def state(self) -> State:
        return self._state

    @property
    def can_refresh(self) -> bool:
        return self.refresh and self._get_token is not None and not self._stop.is_set()

    def start(self) -> None:
        """Start connecting (``async with`` and :meth:`messages` do it for you)."""
        if self._done:
            raise ClientClosed("this client is closed; make a new one")
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="courier-client")

    async def ready(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Until connected; the client's error if it stopped instead."""
        if not self._done:
            self.start()
        waits = {asyncio.ensure_future(self._up.wait()), asyncio.ensure_future(self._stop.wait())}
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        if self._state is State.CONNECTED:
            return
        if self.error is not None:
            raise self.error
        if self._stop.is_set():
            raise ClientClosed("the client was closed")
        raise TimeoutError(f"not connected within {timeout} s")

    async def close(self) -> None:
        """Send the acks still pending, close the socket (1000) and stop."""
        if self._done:
            return
        self._stop.set()
        session, task = self._session, self._task
        if session is not None and session.connected:
            await self._acks.flush()
            with contextlib.suppress(ConnectionClosed):
                await session.close(1000, "client closed")
        if task is not None and not task.done():
            if session is None or not session.connected:
                task.cancel()  # between connections: nothing to say goodbye to
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(task, 5)
        self._finish(None)

    # -- what the app calls ---------------------------------------------------------------
    async def messages(self) -> AsyncIterator[Message]:
        """Each message once, in the order received. In auto mode a message is acked
        when you ask for the next one (a message you break out on is not: ack it
        first). Ends when the client is closed; raises the client's error when it
        stopped (a refusal)."""
        if self._consuming:
            raise CourierClientError("messages() is iterated already")
        self._consuming = True
        if not self._done:
            self.start()
        taken: Message | None = None
        try:
            while True:
                if taken is not None and self.ack_mode == "auto":
                    self.ack(taken.id)
                taken = None
                if self._done or self._stop.is_set():
                    break
                item = await self._queue.get()
                if item is None:
                    break
                self._queued.discard(item.id)
                self._seen.add(item.id)
                taken = item
                yield item
        finally:
            self._consuming = False
        if self.error is not None:
            raise self.error

    def ack(self, *ids: str) -> None:
        """Acknowledge these messages (sent within ``ack_delay``, in one frame)."""
        for mid in ids:
            if self._seen.get(mid) is True:
                continue  # acked already
            self._seen.add(mid, acked=True)
            self._acks.add(mid)
        self._acks.schedule()

    async def reply(self, message_id: str, data: Any) -> None:
        """Answer a message with ``reply_requested``; sent now, or after a reconnect.
        The reply counts as the message's ack (as in the JS client)."""
        await self._send_or_keep({"type": "reply", "id": message_id, "data": data})
        if self._seen.get(message_id) is False:
            self.ack(message_id)

    async def cancel(self, task_id: str) -> None:
        """Ask the producer of one of this user's tasks to cancel it."""
        await self._send_or_keep({"type": "cancel", "task_id": task_id})

    async def subscribe(self, topic: str) -> None:
        """Live frames of a topic (``task:123``), again after every reconnect; they
        come as ``topic`` events (``subscribed`` confirms, ``error`` refuses)."""
        self._topics[topic] = None
        await self._send_if_up({"type": "subscribe", "topic": topic})

    async def unsubscribe(self, topic: str) -> None:
        self._topics.pop(topic, None)
        await self._send_if_up({"type": "unsubscribe", "topic": topic})

    @property
    def topics(self) -> list[str]:
        return list(self._topics)

    def on(self, event: str, handler: Handler) -> Callable[[], None]:
        """Call ``handler(value)`` on each ``event`` (see :data:`EVENTS`); a coroutine
        function runs as a task. Returns a function that removes the handler."""
        return self.events.on(event, handler)

    # -- the connect loop -----------------------------------------------------------------
    async def _run(self) -> None:
        error: CourierClientError | None = None
        try:
            while not self._stop.is_set():
                await self._attempt()
                if self._stop.is_set():
                    break
                delay = self._backoff.next_delay()
                self._emit("reconnecting", delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)
        except CourierClientError as e:
            error = e
        except Exception as e:  # a bug: stop loudly rather than loop
            log.exception("courier client failed")
            error = CourierClientError(f"the client failed: {e!r}")
        self._finish(error)

    async def _attempt(self) -> None:
        """One connection, from the token to its close."""
        self.attempts += 1
        self._set_state(State.CONNECTING)
        self._emit("connecting", self.attempts)
        try:
            token = await self._fetch_token()
        except NoToken:
            raise
        except Exception as e:  # the app's token service: retried with backoff
            self._report(ClientEvent("token", "get_token_failed", repr(e)))
            self._set_state(State.DISCONNECTED)
            return
        try:
            url, options = self._connect_args(token)
            ws = await connect(url, **options)
        except InvalidURI as e:
            raise CourierClientError(f"bad URL {self.url!r}: {e}") from None
        except (OSError, InvalidHandshake, TimeoutError) as e:
            self._report(ClientEvent("transport", "connect_failed", f"{type(e).__name__}: {e}"))
            self._ended(1006, f"could not connect: {e}")
            return
        session = self._session = Session(self, ws, token)
        try:
            code, reason = await session.run()
        finally:
            self._session = None
            self._up.clear()
        self._ended(code, reason)
        if code in REFUSED and not self._stop.is_set():
            if self._refused or self._get_token is None:
                raise refusal(code, reason, fixed_token=self._get_token is None)
            self._refused = True  # one fresh token, then give up

    def _connect_args(self, token: str) -> tuple[str, dict[str, Any]]:
        """The URL and the options of ``websockets.connect`` for this token."""
        url, headers, protocols = self.url, {}, None
        if self.auth == "query":
            url = with_query(url, token=token)
        elif self.auth == "header":
            headers["Authorization"] = f"Bearer {token}"
        else:
            protocols = [Subprotocol("bearer"), Subprotocol(token)]
        return url, {
            "additional_headers": headers,
            "subprotocols": protocols,
            "open_timeout": self.connect_timeout,
            "close_timeout": 2,
            "ping_interval": None,  # the protocol's own ping/pong is the heartbeat
            "max_size": None,
        }

    async def _fetch_token(self) -> str:
        if self._get_token is None:
            return self._token or ""
        token = self._get_token()
        if inspect.isawaitable(token):
            token = await token
        if not token:
            raise NoToken("get_token() gave no token")
        return str(token)

    # -- a connection's events ------------------------------------------------------------
    async def _connected(self, session: Session, hello: dict[str, Any]) -> None:
        self._refused = False
        self._backoff.up(time.monotonic())
        self._set_state(State.CONNECTED)
        self._up.set()
        self._emit("connected", hello)
        try:
            for topic in list(self._topics):
                await session.send({"type": "subscribe", "topic": topic})
            while self._outbox:
                await session.send(self._outbox[0])
                self._outbox.popleft()
        except ConnectionClosed:
            return
        self._acks.schedule(now=True)

    def _ended(self, code: int, reason: str) -> None:
        self._backoff.down(time.monotonic())
        reconnect = not self._stop.is_set() and not (
            code in REFUSED and (self._refused or self._get_token is None)
        )
        self._set_state(State.DISCONNECTED)
        self._emit("disconnected", Disconnected(code, reason, reconnect))

    def _frame(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "message":
            self._message(frame)
        elif kind == "error":
            code, detail = str(frame.get("code")), str(frame.get("detail", ""))
            self._report(ClientEvent("server", code, detail, frame))
        elif isinstance(kind, str) and kind in EVENTS:
            self._emit(kind, frame)
        else:
            log.debug("courier: frame of a type this client does not know: %.200r", frame)

    def _message(self, frame: dict[str, Any]) -> None:
        mid = frame.get("id")
        if not isinstance(mid, str):
            return
        if mid in self._queued:
            return  # not taken yet: acked once, when it is
        seen = self._seen.get(mid)
        if seen is not None:
            self._emit("duplicate", frame)
            if seen:  # acked before: that ack may be lost, so again
                self._acks.add(mid)
                self._acks.schedule()
            return
        self._queued.add(mid)
        self._queue.put_nowait(Message.of(frame, self))

    # -- sending --------------------------------------------------------------------------
    async def _send_if_up(self, frame: dict[str, Any]) -> bool:
        session = self._session
        if session is None or not session.connected:
            return False
        try:
            await session.send(frame)
        except ConnectionClosed:
            return False
        return True

    async def _send_or_keep(self, frame: dict[str, Any]) -> None:
        if self._done:
            raise ClientClosed("the client is closed")
        if self._outbox or not await self._send_if_up(frame):
            if len(self._outbox) >= self.outbox_size:
                raise CourierClientError(f"{self.outbox_size} frames wait for a connection")
            self._outbox.append(frame)

    # -- state and events -----------------------------------------------------------------
    def _set_state(self, state: State) -> None:
        if state is not self._state:
            self._state = state
            self._emit("state", state)

    def _report(self, event: ClientEvent) -> None:
        self.events.report(event)

    def _emit(self, event: str, value: Any) -> None:
        self.events.emit(event, value)

    def _finish(self, error: CourierClientError | None) -> None:
        if self._done:
            return
        self._done = True
        self.error = error
        self._stop.set()
        self._acks.cancel()
        self._set_state(State.DISCONNECTED)
        self._queue.put_nowait(None)  # wakes messages(): it ends, or raises the error
