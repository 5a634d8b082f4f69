"""Every error leaves as ``{"error": {"code", "detail"}}`` with a fitting status, never
as plain text: Redis refusing writes (out of memory, a failover, a cluster that is
down, a master failing over, a slot moving) or out of reach is ``503`` with
``Retry-After`` (``redis_full`` or ``redis_unavailable``), anything unforeseen ``500
internal_error``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from redis import exceptions as rex
from starlette.exceptions import HTTPException as StarletteHTTPException

from consumers.resilience import redis_full, transient
from delivery.exceptions import CourierError
from delivery.metrics import REDIS_ERRORS, REDIS_REFUSED

from .responses import OrjsonResponse

log = logging.getLogger(__name__)

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


FULL_RETRY_AFTER = 5  # seconds: memory frees when consumers and operators act
DOWN_RETRY_AFTER = 1


def redis_error_response(exc: BaseException) -> OrjsonResponse:
    """The answer to a request that Redis refused or could not take."""
    REDIS_ERRORS.labels("http").inc()
    if redis_full(exc):
        REDIS_REFUSED.labels("http").inc()
        detail = "Redis is out of memory and refuses writes; nothing was written; retry later"
        return _unavailable("redis_full", detail, FULL_RETRY_AFTER)
    if transient(exc):
        detail = f"Redis is unavailable ({type(exc).__name__}); nothing was written; retry"
        return _unavailable("redis_unavailable", detail, DOWN_RETRY_AFTER)
    log.error("Redis refused a request", exc_info=exc)
    return OrjsonResponse(body("internal_error", "internal error"), status_code=500)


def _unavailable(code: str, detail: str, retry_after: int) -> OrjsonResponse:
    return OrjsonResponse(
        body(code, detail), status_code=503, headers={"Retry-After": str(retry_after)}
    )


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> OrjsonResponse:
        return OrjsonResponse(body(exc.code, exc.detail), status_code=exc.status)

    @app.exception_handler(CourierError)
    async def _courier(_: Request, exc: CourierError) -> OrjsonResponse:
        if exc.retry_after is not None:
            return _unavailable(exc.code, exc.detail, exc.retry_after)
        return OrjsonResponse(body(exc.code, exc.detail), status_code=exc.http_status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> OrjsonResponse:
        status, code, detail = _validation_detail(exc)
        return OrjsonResponse(body(code, detail), status_code=status)

    @app.exception_handler(rex.RedisError)
    async def _redis(_: Request, exc: Exception) -> OrjsonResponse:
        return redis_error_response(exc)

    # redis-py's cluster client raises these outside RedisError (a slot map it cannot
    # read during a failover): 503 when transient, like the others
    @app.exception_handler(rex.RedisClusterException)
    async def _cluster(_: Request, exc: Exception) -> OrjsonResponse:
        return redis_error_response(exc)

    @app.exception_handler(Exception)
    async def _unforeseen(_: Request, exc: Exception) -> OrjsonResponse:
        log.error("unhandled error", exc_info=exc)
        return OrjsonResponse(body("internal_error", "internal error"), status_code=500)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> OrjsonResponse:
        code = _CODES.get(exc.status_code, "error")
        return OrjsonResponse(body(code, str(exc.detail)), status_code=exc.status_code)
