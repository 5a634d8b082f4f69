"""What a peer may cost the edge before its request head is complete.

uvicorn's httptools protocol reads a request head without bounds: a 96 MB header was
read whole (and concatenated piece by piece, stalling the event loop for every
connection), and a connection that sends nothing, or one byte now and then, was held
open for ever. :class:`LimitedHttpProtocol` is that protocol with limits, each answered
with the JSON error envelope and ``Connection: close``:

- ``MAX_HEADER_BYTES``: the request line and headers of one request. The parser is fed
  at most that much before the head must be complete; more is ``431``
  (``headers_too_large``) and the connection is closed.
- ``MAX_HEADERS``: headers in one request; more is ``431`` too.
- ``HEADER_TIMEOUT_SECONDS``: from a connection's start (or a request's first byte) to
  its complete head. A connection that sent part of a head by then gets ``408``
  (``request_timeout``); one that sent nothing is closed.
- ``MAX_PENDING_HANDSHAKES``: connections of this process whose head is not complete
  yet (HTTP requests and WebSocket upgrades alike). A connection beyond it is answered
  ``503`` (``too_many_handshakes``, ``Retry-After``) at once and closed.
- ``KEEPALIVE_TIMEOUT_SECONDS`` (uvicorn's ``timeout_keep_alive``): an idle keep-alive
  connection is closed after it.

A WebSocket upgrade is handed to the WebSocket protocol once its head is complete; a
header line that ``websockets`` refuses there (over 8 KB) is answered by
:class:`api.wire.EdgeProtocol`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from delivery.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HttpLimits:
    max_header_bytes: int = 16384
    max_headers: int = 100
    header_timeout: float = 10.0
    max_pending: int = 1000

    @classmethod
    def from_settings(cls, s: Settings) -> HttpLimits:
        return cls(
            max_header_bytes=s.max_header_bytes,
            max_headers=s.max_headers,
            header_timeout=s.header_timeout_seconds,
            max_pending=s.max_pending_handshakes,
        )


def error_response(status: int, code: str, detail: str, *, retry_after: int | None = None) -> bytes:
    """A complete HTTP/1.1 response with the JSON error envelope, closing the connection."""
    body = orjson.dumps({"error": {"code": code, "detail": detail}})
    head = [
        STATUS_LINE[status],
        b"content-type: application/json\r\n",
        b"content-length: %d\r\n" % len(body),
        b"connection: close\r\n",
    ]
    if retry_after is not None:
        head.append(b"retry-after: %d\r\n" % retry_after)
    return b"".join([*head, b"\r\n", body])


class _TooManyHeaders(Exception):
    pass


class Pending:
    """How many connections of one server are still sending a request head."""

    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0


class LimitedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits above (see :func:`protocol_class`)."""

    limits = HttpLimits()
    pending = Pending()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = False
        self._counted = False
        self._head_bytes = 0
        self._n_headers = 0
        self._too_many = False
        self._head_timer: asyncio.TimerHandle | None = None

    # -- the head of each request -----------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self.pending.n >= self.limits.max_pending:
            log.warning("refused a connection: %d request heads pending", self.pending.n)
            detail = "too many connections are starting at once; retry shortly"
            self._reject(503, "too_many_handshakes", detail, retry_after=1)
            return
        self._start_head()

    def _start_head(self) -> None:
        self._in_head = True
        self._head_bytes = 0
        self._n_headers = 0
        if not self._counted:
            self._counted = True
            self.pending.n += 1
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.limits.header_timeout, self._head_late)

    def _end_head(self) -> None:
        self._in_head = False
        if self._counted:
            self._counted = False
            self.pending.n -= 1
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        if not self._in_head or self.transport.is_closing():
            return
        if self._head_bytes == 0:  # nothing of a request came: just close
            self._end_head()
            self.transport.close()
            return
        detail = f"request head not complete within {self.limits.header_timeout:g} s"
        self._reject(408, "request_timeout", detail)

    def connection_lost(self, exc: Exception | None) -> None:
        self._end_head()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._n_headers = 0
        if not self._in_head:  # the next request of a keep-alive connection
            self._start_head()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._n_headers += 1
        if self._n_headers > self.limits.max_headers:
            self._too_many = True
            raise _TooManyHeaders()  # httptools stops parsing: see _feed
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._end_head()
        super().on_headers_complete()

    # -- reading ----------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        """Feed the parser; while a head is incomplete, never more than its limit."""
        while self._in_head and data:
            room = self.limits.max_header_bytes - self._head_bytes
            if room <= 0:
                detail = f"request head over {self.limits.max_header_bytes} bytes"
                self._reject(431, "headers_too_large", detail)
                return
            part, data = data[:room], data[room:]
            self._head_bytes += len(part)
            if not self._feed(part):
                return
        if data:
            self._feed(data)

    def _feed(self, data: bytes) -> bool:
        """uvicorn's data_received, answering in JSON; False once the connection is no
        longer this protocol's to read (closed, refused or upgraded)."""
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return False
        except httptools.HttpParserError:
            if self._too_many:
                detail = f"more than {self.limits.max_headers} headers"
                self._reject(431, "headers_too_large", detail)
            else:
                self._reject(400, "bad_request", "invalid HTTP request")
            return False
        return not self.transport.is_closing()

    def _reject(
        self, status: int, code: str, detail: str, *, retry_after: int | None = None
    ) -> None:
        self._end_head()
        if self.transport.is_closing():
            return
        self.transport.pause_reading()  # read no more of it: the close drops the rest
        self.transport.write(error_response(status, code, detail, retry_after=retry_after))
        self.transport.close()


def protocol_class(limits: HttpLimits) -> type[LimitedHttpProtocol]:
    """A protocol class for one server: its limits and its own count of pending heads."""
    return type(
        "LimitedHttpProtocol",
        (LimitedHttpProtocol,),
        {"limits": limits, "pending": Pending()},
    )
