"""The edge's WebSocket URL from what the app gives: ``ws://host:port/v1/ws``, or
just the server (``http://host:port``, ``wss://host``), optionally for one user."""

from __future__ import annotations

from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

PATH = "/v1/ws"
SCHEMES = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}


def ws_url(url: str, *, user: str | None = None, device: str | None = None) -> str:
    """``/v1/ws`` when the URL has no path; ``/v1/ws/{user}`` for ``user`` (the
    server checks it is the token's ``sub``); ``?device=`` names this device."""
    parts = urlsplit(url)
    scheme = SCHEMES.get(parts.scheme.lower())
    if scheme is None or not parts.netloc:
        raise ValueError(f"not a server URL: {url!r} (e.g. ws://127.0.0.1:8000/v1/ws)")
    path = parts.path.rstrip("/") or PATH
    if user is not None:
        path = f"{path}/{quote(user, safe='')}"
    query = parts.query
    if device is not None:
        query = with_query(f"?{query}", device=device)[1:]
    return urlunsplit((scheme, parts.netloc, path, query, ""))


def with_query(url: str, **params: str) -> str:
    """``url`` with these query parameters set (others kept)."""
    parts = urlsplit(url)
    pairs = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    return urlunsplit(parts._replace(query=urlencode([*pairs, *params.items()])))
