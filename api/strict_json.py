"""Request bodies as strict JSON (RFC 8259), parsed with orjson.

Starlette parses bodies with the standard library, which takes ``NaN`` and
``Infinity`` (stored afterwards as ``null``), lone surrogates (``"\\ud800"``, which
cannot be written as UTF-8) and integers of any size (which orjson cannot write
again): each of them became a 500. Here they are refused before any route runs, with
FastAPI's own ``json_invalid`` error (400 ``invalid_json``):

- ``NaN``, ``Infinity``, lone surrogates and nesting over 1024 levels: orjson refuses
  them;
- integers outside 64 bits (orjson would read them as floats, changing the value): a
  body with a run of 19 or more digits is read once more with the standard library
  to find them (the rare slow path).

Values nested deeper than orjson writes (255 levels) are refused where they are
stored (:func:`delivery.message.json_bytes`), with 422.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import Request, Response
from fastapi.routing import APIRoute

INT_MIN, INT_MAX = -(2**63), 2**64 - 1
_LONG_DIGITS = re.compile(rb"\d{19}")
_LONG_DIGITS_TEXT = re.compile(r"[0-9]{19}")


def _in_range(literal: str) -> int:
    value = int(literal)
    if not INT_MIN <= value <= INT_MAX:
        raise ValueError(f"integer {literal[:30]}... is outside 64 bits")
    return value


def loads(body: bytes | str) -> Any:
    """Strict JSON (a request body or a WebSocket frame); json.JSONDecodeError
    (FastAPI's 400 ``invalid_json``) otherwise."""
    value = orjson.loads(body)  # orjson.JSONDecodeError is a json.JSONDecodeError
    long = _LONG_DIGITS_TEXT.search(body) if isinstance(body, str) else _LONG_DIGITS.search(body)
    if long:
        try:
            json.loads(body, parse_int=_in_range)
        except ValueError as e:
            doc = body if isinstance(body, str) else body.decode("utf-8", "replace")
            raise json.JSONDecodeError(str(e), doc, 0) from None
    return value


class StrictRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads(await self.body())
        return self._json


class StrictRoute(APIRoute):
    """A route whose request body is parsed by :func:`loads`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(StrictRequest(request.scope, request.receive))

        return strict
