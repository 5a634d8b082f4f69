"""Every error leaves as ``{"error": {"code", "detail"}}`` with a fitting status."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from redis import exceptions as rex
from starlette.exceptions import HTTPException as StarletteHTTPException

from delivery.exceptions import CourierError
from delivery.metrics import REDIS_ERRORS

from .responses import OrjsonResponse

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
    503: "unavailable",
}


class ApiError(Exception):
    def __init__(self, status: int, detail: str, code: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.code = code or _CODES.get(status, "error")


def body(code: str, detail: str) -> dict[str, Any]:
    return {"error": {"code": code, "detail": detail}}


def _validation_detail(exc: RequestValidationError) -> tuple[int, str, str]:
    err = exc.errors()[0]
    if err.get("type") == "json_invalid":
        return 400, "invalid_json", f"body is not valid JSON: {err.get('ctx', {}).get('error')}"
    loc = ""
    for x in err.get("loc", ()):
        if x == "body":
            continue
        loc += f"[{x}]" if isinstance(x, int) else f".{x}" if loc else str(x)
    loc = loc or "body"
    return 422, "invalid_request", f"{loc}: {err.get('msg')}"


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> OrjsonResponse:
        return OrjsonResponse(body(exc.code, exc.detail), status_code=exc.status)

    @app.exception_handler(CourierError)
    async def _courier(_: Request, exc: CourierError) -> OrjsonResponse:
        return OrjsonResponse(body(exc.code, exc.detail), status_code=exc.http_status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> OrjsonResponse:
        status, code, detail = _validation_detail(exc)
        return OrjsonResponse(body(code, detail), status_code=status)

    @app.exception_handler(rex.ConnectionError)
    @app.exception_handler(rex.TimeoutError)
    @app.exception_handler(rex.BusyLoadingError)
    async def _redis_down(_: Request, exc: Exception) -> OrjsonResponse:
        REDIS_ERRORS.labels("http").inc()
        detail = f"Redis is unavailable ({type(exc).__name__}); retry shortly"
        return OrjsonResponse(body("redis_unavailable", detail), status_code=503)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> OrjsonResponse:
        code = _CODES.get(exc.status_code, "error")
        return OrjsonResponse(body(code, str(exc.detail)), status_code=exc.status_code)
