"""Every request body is read as JSON, whatever its ``Content-Type`` says.

The API takes JSON bodies only. ``curl -d '{...}'`` labels its body
``application/x-www-form-urlencoded``, other clients send none or ``text/plain``, and
FastAPI then hands the route the raw bytes, which fail validation with a puzzling 422
(``Input should be a valid dictionary``). Here a body that is not labelled JSON
(``application/json`` or ``application/*+json``) is relabelled ``application/json``
before any route runs, so it is parsed like any other (a body that is not JSON gets
the usual 400 ``invalid_json``). No route of Courier takes forms or files.
"""

from __future__ import annotations

import email.message
from functools import lru_cache

from starlette.types import ASGIApp, Receive, Scope, Send

JSON = b"application/json"
_WITH_BODY = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@lru_cache(maxsize=64)  # a handful of labels in practice; parsing one costs ~8 us
def is_json(content_type: bytes) -> bool:
    message = email.message.Message()
    message["content-type"] = content_type.decode("latin-1")
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


class JsonBodies:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in _WITH_BODY:
            headers = scope["headers"]
            labels = [v for k, v in headers if k == b"content-type"]
            if not (labels and is_json(labels[0])):
                kept = [(k, v) for k, v in headers if k != b"content-type"]
                scope = {**scope, "headers": [*kept, (b"content-type", JSON)]}
        await self.app(scope, receive, send)
