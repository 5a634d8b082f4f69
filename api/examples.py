"""The example pages and the JavaScript client, served from a checkout.

In a source checkout (and its editable install) the repository's ``examples/`` and
``clients/js/src/`` sit next to the installed packages; then the edge serves them,
read-only, so that ``./scripts/serve`` and one URL show the pages working against the
same origin:

| URL | folder |
| --- | --- |
| ``/examples/{file}`` | ``examples/`` (the pages, and what they import) |
| ``/clients/js/src/{file}`` | ``clients/js/src/`` (where the pages import the client from) |
| ``/client/{file}`` | the same folder, for apps: ``import {Courier} from "/client/index.js"`` |

Only files of the types in :data:`MEDIA_TYPES` are served, never a dotfile or
anything outside those folders (Starlette's ``StaticFiles`` resolves the path and
refuses what leaves the folder, symlinks included); anything else is a 404 in the
usual JSON envelope. A wheel or the Docker image has no such folders, so nothing is
served there; ``COURIER_SERVE_EXAMPLES=false`` turns it off in a checkout too.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import FileResponse, Response
from starlette.staticfiles import NotModifiedResponse, StaticFiles
from starlette.types import Scope

from delivery.settings import Settings

# What may be served, by suffix: module scripts need a JavaScript type, and the types
# are set here rather than guessed from the machine's mime.types.
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".ts": "text/plain; charset=utf-8",  # index.d.ts: the types, to read
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
}

INBOX = "inbox.html"  # the page the banner names

# URL prefix -> folder of the checkout
MOUNTS = {
    "/examples": "examples",
    "/clients/js/src": "clients/js/src",
    "/client": "clients/js/src",
}


def checkout_root() -> Path | None:
    """The source checkout the packages were imported from, or None (a wheel's
    site-packages has no pyproject.toml next to the packages)."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "pyproject.toml").is_file() else None


def folders(root: Path | None) -> dict[str, Path]:
    """URL prefix -> existing folder, of :data:`MOUNTS`."""
    if root is None:
        return {}
    return {url: root / sub for url, sub in MOUNTS.items() if (root / sub).is_dir()}


class Folder(StaticFiles):
    """One folder, read-only: the files of :data:`MEDIA_TYPES`, no dotfiles."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        parts = PurePosixPath(path.replace(os.sep, "/")).parts
        if any(p.startswith(".") for p in parts) or PurePosixPath(path).suffix not in MEDIA_TYPES:
            if scope["method"] in ("GET", "HEAD"):
                raise HTTPException(404, f"no file {scope['path']!r} here")
        return await super().get_response(path, scope)

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        media_type = MEDIA_TYPES[Path(full_path).suffix]
        response = FileResponse(
            full_path, status_code=status_code, stat_result=stat_result, media_type=media_type
        )
        response.headers["Cache-Control"] = "no-cache"  # a checkout's files change
        response.headers["X-Content-Type-Options"] = "nosniff"
        if self.is_not_modified(response.headers, Headers(scope=scope)):
            return NotModifiedResponse(response.headers)
        return response


def install(app: FastAPI, settings: Settings, root: Path | None = None) -> dict[str, Path]:
    """Serve the checkout's examples and JS client (see the module's docstring) when
    ``settings.serve_examples``; the prefixes mounted. ``root``: the checkout
    (default: the one these packages come from)."""
    if not settings.serve_examples:
        return {}
    mounted = folders(root if root is not None else checkout_root())
    for url, folder in mounted.items():
        app.mount(url, Folder(directory=folder), name=f"static:{url}")
    return mounted


def banner(settings: Settings, token: str) -> str | None:
    """The line `courier serve` prints about the example pages, or None when they are
    not served. ``token``: a user token for the URL (the inbox page uses it)."""
    examples = folders(checkout_root()).get("/examples")
    if not settings.serve_examples or examples is None or not (examples / INBOX).is_file():
        return None
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    if ":" in host:
        host = f"[{host}]"
    return f"Inbox:  http://{host}:{settings.port}/examples/{INBOX}?token={token}"
