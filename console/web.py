"""The console on the edge: the page's files at ``/admin/`` and its two sign-in routes.

``install(app)`` is the ``courier.web`` entry point that ``api/app.py`` calls. The
files come from the installed package (``static/``: package data), with no CDN, so
the page works offline; every answer carries a Content-Security-Policy that lets the
page load and call nothing but this origin.

Sign-in routes (kept out of the OpenAPI document: they are the page's, not the API):

- ``POST /admin/session`` with ``Authorization: Bearer <admin token>``: answers
  ``{"user_id", "role", "expires_at"}`` (401 or 403 for another token);
- ``POST /admin/session/link`` with ``{"code"}`` from ``courier admin``'s link:
  answers ``{"token", "user_id", "role", "expires_at"}``, 404 when the code is
  unknown, used already or expired.

Both are logged as sign-ins (:mod:`api.audit`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jwt
from fastapi import APIRouter, Depends, FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import Headers
from starlette.responses import FileResponse, Response
from starlette.staticfiles import NotModifiedResponse, StaticFiles
from starlette.types import Scope

from api import audit
from api.auth import AuthError, Principal, Role, Verifier
from api.deps import admin, runtime
from api.errors import ApiError
from api.responses import OrjsonResponse
from api.runtime import Runtime
from delivery.message import iso_ms

from . import signin

STATIC = Path(__file__).parent / "static"
PREFIX = "/admin"
CSP = (
    "default-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "style-src 'self'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)

router = APIRouter(prefix=PREFIX, include_in_schema=False)


class LinkIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(min_length=1, max_length=100)


def _expires_at(token: str) -> str | None:
    exp = jwt.decode(token, options={"verify_signature": False}).get("exp")
    return iso_ms(int(exp) * 1000) if isinstance(exp, int | float) else None


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    return header[7:].strip()


@router.post("/session")
async def session(request: Request, who: Principal = Depends(admin)) -> Any:
    """Sign in with a pasted admin token: who it is, until when."""
    expires = _expires_at(_bearer(request))
    audit.record(who.user_id, "sign in", "console", using="token")
    return OrjsonResponse({"user_id": who.user_id, "role": who.role, "expires_at": expires})


@router.post("/session/link")
async def session_link(request: Request, body: LinkIn, rt: Runtime = Depends(runtime)) -> Any:
    """Trade a one-time code of ``courier admin`` for its admin token."""
    token = await signin.redeem(rt.redis, rt.keyspace, body.code)
    if token is None:
        raise ApiError(
            404,
            "this sign-in link is unknown, used already or expired: run `courier admin` "
            "for a new one",
            code="sign_in_link_invalid",
        )
    verifier: Verifier = request.app.state.verifier
    try:
        who = verifier.verify(token)
    except AuthError as e:  # the secret changed since the link was made
        raise ApiError(401, f"the link's token is refused: {e.detail}") from None
    if who.role is not Role.ADMIN:
        raise ApiError(403, f"the link's token has role {who.role.value!r}, not admin")
    audit.record(who.user_id, "sign in", "console", using="one-time link")
    return OrjsonResponse(
        {"token": token, "user_id": who.user_id, "role": who.role, "expires_at": _expires_at(token)}
    )


MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",  # not in every Python's mimetypes
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
    ".LICENSE": "text/plain; charset=utf-8",
}


class ConsoleFiles(StaticFiles):
    """The page's files with fixed media types (module scripts need a JavaScript one,
    whatever the machine's mime.types says) and the page's security headers."""

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        media_type = MEDIA_TYPES.get(Path(full_path).suffix, "application/octet-stream")
        response = FileResponse(
            full_path, status_code=status_code, stat_result=stat_result, media_type=media_type
        )
        response.headers["Cache-Control"] = "no-cache"
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        if self.is_not_modified(response.headers, Headers(scope=scope)):
            return NotModifiedResponse(response.headers)
        return response


def install(app: FastAPI) -> None:
    """Add the console to the app: its routes first, then the files under them."""
    app.include_router(router)
    app.mount(PREFIX, ConsoleFiles(directory=STATIC, html=True), name="console")
