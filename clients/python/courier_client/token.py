"""What the client reads from its own token: the ``exp`` claim, to refresh it on
time. The token is not verified here (the server does that); a token that is not a
JWT simply has no ``exp`` and is never refreshed."""

from __future__ import annotations

import base64
import binascii
import json


def token_exp(token: str) -> float | None:
    """The ``exp`` claim of a JWT (unix seconds), or None."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    body = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(body))
    except (ValueError, binascii.Error):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        return None
    return float(exp)


def refresh_delay(remaining: float, margin: float) -> float:
    """Seconds to wait before refreshing a token that expires in ``remaining`` s:
    ``margin`` before its exp, but never later than half of what is left."""
    return max(0.0, remaining - min(margin, remaining / 2))
