"""One connection of a :class:`~courier_client.client.CourierClient`: wait for
``connected``, then read frames until the socket closes, while two tasks live
beside the reader: the heartbeat (``ping`` every ``heartbeat_interval``, a missing
``pong`` closes the socket) and the token refresh before ``exp``. Everything a
session starts ends with it; what outlives a connection (acks not sent yet, topics,
queued frames) belongs to the client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from .message import ClientEvent
from .token import refresh_delay, token_exp

if TYPE_CHECKING:
    from .client import CourierClient

log = logging.getLogger("courier_client")

NO_PONG = 4000  # our own close code: the server did not answer a ping in time
REFRESH_ERRORS = frozenset({"refresh_refused", "refresh_wrong_subject"})
MIN_AHEAD = 0.25  # s: a refresh sent closer to exp may come too late; reconnect instead


def dumps(frame: dict[str, Any]) -> str:
    return json.dumps(frame, separators=(",", ":"))


class Session:
    def __init__(self, client: CourierClient, ws: ClientConnection, token: str) -> None:
        self.client = client
        self.ws = ws
        self.token = token
        self.connected = False  # the `connected` frame came
        self.hello: dict[str, Any] = {}
        self._pong = asyncio.Event()
        self._refresh: asyncio.Future[dict[str, Any]] | None = None  # waiting for its answer
        self._tasks: list[asyncio.Task[None]] = []
        self._ours: tuple[int, str] | None = None  # a close we decided on

    # -- sending ------------------------------------------------------------------------
    async def send(self, frame: dict[str, Any]) -> None:
        """Send a frame; ConnectionClosed when the socket is gone."""
        await self.ws.send(dumps(frame))

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self._ours = self._ours or (code, reason)
        await self.ws.close(code, reason)

    # -- the connection's life ------------------------------------------------------------
    async def run(self) -> tuple[int, str]:
        """Serve the connection until it closes: its close code and reason."""
        c = self.client
        try:
            hello = json.loads(await asyncio.wait_for(self.ws.recv(), c.connect_timeout))
            if not isinstance(hello, dict) or hello.get("type") != "connected":
                await self.close(1002, "expected a connected frame first")
                return self._outcome()
            self.hello, self.connected = hello, True
            interval = float(hello.get("heartbeat_interval") or 30)
            self._tasks = [
                asyncio.create_task(self._heartbeat(interval), name="courier-heartbeat"),
                asyncio.create_task(self._refresher(), name="courier-refresh"),
            ]
            await c._connected(self, hello)
            async for text in self.ws:
                self._frame(text)
        except TimeoutError:
            await self.close(NO_PONG, "no connected frame in time")
        except ConnectionClosed:
            pass
        finally:
            for t in self._tasks:
                t.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            if self._refresh is not None and not self._refresh.done():
                self._refresh.cancel()
        return self._outcome()

    def _outcome(self) -> tuple[int, str]:
        if self._ours is not None and self._ours[0] != 1000:
            return self._ours
        code = self.ws.close_code
        return (1006 if code is None else code), self.ws.close_reason or ""

    def _frame(self, text: str | bytes) -> None:
        try:
            frame = json.loads(text)
        except ValueError:
            log.warning("courier: a frame that is not JSON: %.200r", text)
            return
        if not isinstance(frame, dict):
            return
        kind = frame.get("type")
        if kind == "pong":
            self._pong.set()
            return
        if self._refresh is not None and self._answers_refresh(frame):
            if not self._refresh.done():
                self._refresh.set_result(frame)
            return
        self.client._frame(frame)

    @staticmethod
    def _answers_refresh(frame: dict[str, Any]) -> bool:
        if frame.get("type") == "refreshed":
            return True
        code = frame.get("code")
        return frame.get("type") == "error" and (
            code in REFRESH_ERRORS
            or (code == "unknown_type" and "refresh" in str(frame.get("detail")))
        )

    # -- heartbeat ------------------------------------------------------------------------
    async def _heartbeat(self, interval: float) -> None:
        timeout = min(self.client.pong_timeout, interval)
        while True:
            await asyncio.sleep(interval)
            self._pong.clear()
            try:
                await self.send({"type": "ping", "ts": int(time.time() * 1000)})
                await asyncio.wait_for(self._pong.wait(), timeout)
            except ConnectionClosed:
                return
            except TimeoutError:
                log.warning("courier: no pong within %.1f s; reconnecting", timeout)
                self._ours = (NO_PONG, "no pong in time")
                with contextlib.suppress(ConnectionClosed):
                    await self.ws.close(NO_PONG, "no pong in time")
                return

    # -- token refresh --------------------------------------------------------------------
    async def _refresher(self) -> None:
        """Send a fresh token before the current one expires, as long as the server
        takes them; a refusal is reported and retried while time is left."""
        c = self.client
        while c.can_refresh:
            exp = token_exp(self.token)
            if exp is None:
                return
            remaining = exp - time.time()
            delay = refresh_delay(remaining, c.refresh_margin)
            if remaining - delay < MIN_AHEAD:
                return  # the server closes it with 4401 token_expired; we reconnect
            await asyncio.sleep(delay)
            try:
                fresh = await c._fetch_token()
            except Exception as e:  # reported; tried again while time is left
                c._report(ClientEvent("refresh", "get_token_failed", repr(e)))
                continue
            if not await self._offer(fresh):
                return

    async def _offer(self, fresh: str) -> bool:
        """Send one refresh and wait for its answer; False: stop refreshing."""
        c = self.client
        self._refresh = asyncio.get_running_loop().create_future()
        try:
            await self.send({"type": "refresh", "token": fresh})
            answer = await asyncio.wait_for(self._refresh, c.refresh_timeout)
        except ConnectionClosed:
            return False
        except TimeoutError:
            c._report(ClientEvent("refresh", "timeout", "no answer to the refresh in time"))
            return True
        finally:
            self._refresh = None
        if answer.get("type") == "refreshed":
            self.token = fresh
            c._emit("refreshed", answer.get("exp"))
            return True
        code = str(answer.get("code"))
        c._report(ClientEvent("refresh", code, str(answer.get("detail", "")), answer))
        return code != "unknown_type"  # a server without refresh: keep the token
