"""A cap on HTTP request bodies, counted as the bytes arrive.

A ``Content-Length`` over the cap is refused before anything is read; a chunked body
(no length) is cut off as soon as it passes the cap. Either way the client gets the
usual JSON error (413 ``payload_too_large``) and nothing is written. Starlette's own
``RequestBodyLimitMiddleware`` does the counting too but answers in plain text.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import errors
from .responses import OrjsonResponse


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _detail(self) -> str:
        return f"request body over {self.max_bytes} bytes"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                body = errors.body("payload_too_large", self._detail())
                return await OrjsonResponse(body, status_code=413)(scope, receive, send)
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    # FastAPI passes an HTTPException raised while it reads the body on
                    # to the error handlers (api/errors.py), which answer in JSON.
                    raise HTTPException(413, self._detail())
            return message

        await self.app(scope, counted, send)
