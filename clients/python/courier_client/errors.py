"""The client's errors, one base class::

    CourierClientError          anything the client gives up on
    ├── Refused                 the server refused the connection (close code, reason)
    │   ├── Unauthorized        4401: the token is missing, expired or wrongly signed
    │   └── Forbidden           4403: this user or origin is not allowed
    ├── NoToken                 get_token() gave no token: the user is signed out
    └── ClientClosed            the client is closed (or was never started)

A refusal is raised only after one fresh ``get_token()`` did not help (or at once
with a fixed token): the client never reconnects in a loop with a token the server
refuses.
"""

from __future__ import annotations


class CourierClientError(Exception):
    """Base class of the client's errors."""


class Refused(CourierClientError):
    """The server closed the connection with a code that retrying will not change."""

    def __init__(self, code: int, reason: str, hint: str) -> None:
        super().__init__(f"refused by the server ({code} {reason or 'no reason'}): {hint}")
        self.code = code
        self.reason = reason


class Unauthorized(Refused):
    """4401: get a new token (sign the user in again); the client stopped."""


class Forbidden(Refused):
    """4403: the token's user may not use this URL, or the page's origin is not allowed."""


class NoToken(CourierClientError):
    """``get_token()`` returned an empty token: nobody to connect as."""


class ClientClosed(CourierClientError):
    """The client is closed: nothing more arrives and nothing can be sent."""


def refusal(code: int, reason: str, *, fixed_token: bool) -> Refused:
    """The error for a 4401/4403 close after the client has done what it can."""
    if code == 4403:
        return Forbidden(code, reason, "this user or origin is not allowed; do not retry")
    if fixed_token:
        hint = "pass get_token= so the client can fetch a fresh token"
    else:
        hint = "a fresh token from get_token() was refused too; sign the user in again"
    return Unauthorized(code, reason, hint)
