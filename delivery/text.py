"""Bytes to str, once: what Redis answers (bytes, or str on a client made with
``decode_responses``) read as text. Every module of the product that turns a Redis
reply into text calls :func:`text`."""

from __future__ import annotations

from typing import Any


def text(v: Any) -> str:
    """A Redis reply (bytes, str, or a number) as text."""
    return v.decode() if isinstance(v, bytes) else str(v)
