"""The API's own documentation: ``/docs`` (Swagger UI) and ``/redoc`` served from this
process with no CDN, the error envelope and statuses every route can answer, and
realistic examples. ``COURIER_API_DOCS=false`` turns the pages and ``/openapi.json``
off.

The Swagger UI and ReDoc bundles come from the ``fastapi-offline`` package (kept up to
date with both projects); its ``FastAPIOffline`` factory returns a plain FastAPI, while
Courier's app is a subclass of its own (``api/app.py``), so the pages are built here
with FastAPI's own page builders pointing at that package's files. ReDoc's bundle
draws its footer logo from ``cdn.redoc.ly``: it is served here with that address
emptied (the image is then left out; nothing is fetched).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.openapi.models import Example
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.responses import HTMLResponse, Response

ASSETS = Path(fastapi_offline.__file__).parent / "static"
ASSETS_URL = "/docs-assets"
REDOC_OFFLINE_JS = f"{ASSETS_URL}/offline/redoc.standalone.js"  # a route before the mount
REDOC_CDN = b'"https://cdn.redoc.ly/redoc/logo-mini.svg"'
SWAGGER_PARAMETERS = {
    "persistAuthorization": True,  # the token survives a reload of the page
    "validatorUrl": None,  # no badge fetched from an online validator
    "tryItOutEnabled": True,
    "displayRequestDuration": True,
}


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable, machine-readable reason.", examples=["not_found"])
    detail: str = Field(
        description="What went wrong and what to do, for a person.",
        examples=["no message '3-8f2c1d9e4b7a6c5d3e2f'"],
    )


class ErrorEnvelope(BaseModel):
    """Every error Courier answers, whatever the status."""

    error: ErrorDetail


# status -> (when, example code, example detail)
ERRORS: dict[int, tuple[str, str, str]] = {
    400: ("The body is not valid JSON.", "invalid_json", "body is not valid JSON: ..."),
    401: (
        "No token, or an expired, unsigned or wrongly signed one.",
        "unauthorized",
        "missing token: send 'Authorization: Bearer <jwt>'",
    ),
    403: (
        "The token's role may not do this.",
        "forbidden",
        "role 'user' may not do this; needs admin or service",
    ),
    404: ("No such message, dead letter or task.", "not_found", "no message '3-8f2c1d9e4b7a'"),
    409: (
        "The message is not in a state that allows this.",
        "conflict",
        "message 3-8f2c1d9e4b7a is delivered, not dead; nothing replayed",
    ),
    413: (
        "The body or payload is over the limit.",
        "payload_too_large",
        "payload over 65536 bytes",
    ),
    422: (
        "A field is missing or invalid; nothing was written.",
        "invalid_request",
        "priority: Input should be 'high', 'normal' or 'low'",
    ),
    503: (
        "Redis is unreachable or refuses writes; retry shortly.",
        "redis_unavailable",
        "Redis is unavailable (ConnectionError); retry shortly",
    ),
}

AUTH = (401, 403)
BODY = (400, 413, 422)


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: the envelope, with an example, for each status."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        when, code, detail = ERRORS[status]
        out[status] = {
            "model": ErrorEnvelope,
            "description": when,
            "content": {
                "application/json": {"example": {"error": {"code": code, "detail": detail}}}
            },
        }
    return out


def ok(status: int, description: str, example: Any) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entry of a success answer, with a realistic example."""
    content = {"application/json": {"example": example}}
    return {status: {"description": description, "content": content}}


def install(app: FastAPI) -> None:
    """Serve /docs and /redoc from this process (the app was made with docs_url=None)."""
    openapi_url = app.openapi_url
    if openapi_url is None:  # COURIER_API_DOCS=false
        return

    @app.get(REDOC_OFFLINE_JS, include_in_schema=False)
    async def redoc_js() -> Response:
        return Response(
            redoc_bundle(),
            media_type="text/javascript",
            headers={"Cache-Control": "public, max-age=3600"},
        )

    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS), name="docs-assets")
    redirect = "/docs/oauth2-redirect"

    @app.get("/docs", include_in_schema=False)
    async def swagger(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - API",
            oauth2_redirect_url=f"{root}{redirect}",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            swagger_ui_parameters=SWAGGER_PARAMETERS,
        )

    @app.get(redirect, include_in_schema=False)
    async def swagger_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - API",
            redoc_js_url=f"{root}{REDOC_OFFLINE_JS}",
            redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )


@cache
def redoc_bundle() -> bytes:
    """ReDoc's bundle with no address outside this edge (read once)."""
    return (ASSETS / "redoc.standalone.js").read_bytes().replace(REDOC_CDN, b'""')


def openapi(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document without FastAPI's own 422 shape: where a route did not
    declare Courier's envelope for 422, FastAPI's default entry is dropped (it never
    answers that shape), and so are its schemas."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    from fastapi.openapi.utils import get_openapi

    schema = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
        tags=app.openapi_tags,
    )
    for ops in schema.get("paths", {}).values():
        for op in ops.values():
            default = op.get("responses", {}).get("422", {})
            ref = str(default.get("content", {}).get("application/json", {}).get("schema", {}))
            if "HTTPValidationError" in ref:
                del op["responses"]["422"]
    schemas = schema.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    app.openapi_schema = schema
    return schema


MESSAGE_ID = "3-8f2c1d9e4b7a6c5d3e2f"
ACCEPTED = {"id": MESSAGE_ID, "user_id": "alice", "status": "queued", "duplicate": False}

MESSAGE_EXAMPLES: dict[str, Example] = {
    "one user": {
        "summary": "A high-priority message for one user",
        "value": {
            "user_id": "alice",
            "payload": {"text": "your export is ready", "url": "/exports/7"},
            "priority": "high",
            "ttl_seconds": 86400,
            "idempotency_key": "export-7-ready",
        },
    },
    "recipients, later": {
        "summary": "The same message for three users, in ten minutes",
        "value": {
            "recipients": ["alice", "bob", "carol"],
            "payload": {"text": "the meeting starts soon"},
            "delay_seconds": 600,
        },
    },
    "a question": {
        "summary": "A confirmation request (the user answers with a reply frame)",
        "value": {
            "user_id": "alice",
            "payload": {"question": "Delete 12 files?", "choices": ["yes", "no"]},
            "reply_requested": True,
            "collapse_key": "confirm-delete",
        },
    },
}

BATCH_EXAMPLE = {
    "messages": [
        {"user_id": "alice", "payload": {"text": "build 812 passed"}},
        {"user_id": "bob", "payload": {"text": "build 812 passed"}, "priority": "low"},
    ]
}

TASK_EXAMPLE = {
    "user_id": "alice",
    "status": "progress",
    "progress": 40,
    "message": "page 2 of 5",
}

MESSAGE_VIEW = {
    "id": MESSAGE_ID,
    "user_id": "alice",
    "status": "delivered",
    "priority": "high",
    "payload": {"text": "your export is ready"},
    "attempts": 1,
    "max_attempts": 5,
    "created_at": "2026-12-01T09:30:00.120Z",
    "expires_at": "2026-12-02T09:30:00.120Z",
    "delivered_at": "2026-12-01T09:30:00.164Z",
    "last_error": None,
    "timeline": [
        {"at": "2026-12-01T09:30:00.120Z", "event": "queued", "attempt": 0},
        {
            "at": "2026-12-01T09:30:00.131Z",
            "event": "sent",
            "attempt": 1,
            "to": ["edge-1|c-5f1e"],
        },
        {
            "at": "2026-12-01T09:30:00.164Z",
            "event": "acked",
            "attempt": 1,
            "conn": "c-5f1e",
            "node": "edge-1",
        },
    ],
}
