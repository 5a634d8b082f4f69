"""Errors raised by the delivery core.

::

    CourierError
     ├── ValidationError      bad input; nothing was written (HTTP 422)
     │    └── PayloadTooLarge  the payload is over the limit (HTTP 413)
     ├── NotFound             no such message / dead letter (HTTP 404)
     ├── Conflict             the message is not in a state that allows this (HTTP 409)
     ├── IllegalTransition    a status change the table forbids (a bug if raised)
     ├── StoreUnavailable     Redis could not be reached after retries (HTTP 503)
     ├── TooManyConnections   a user has MAX_CONNECTIONS_PER_USER live connections (4429)
     ├── SettingsError        a setting (or a combination) that cannot work; one line
     ├── NotConfigured        a setting the call needs is missing (no Redis URL)
     ├── ReplyTimeout         no answer to a confirmation request in time
     └── WaitTimeout          a message did not reach the awaited event in time
"""

from __future__ import annotations


class CourierError(Exception):
    """Base class of every error Courier raises on purpose."""

    code = "courier_error"
    http_status = 500
    retry_after: int | None = None  # seconds, sent as Retry-After (a 503 that passes)

    def __init__(self, detail: str, *, code: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code


class ValidationError(CourierError):
    code = "invalid_request"
    http_status = 422


class PayloadTooLarge(ValidationError):
    code = "payload_too_large"
    http_status = 413


class NotFound(CourierError):
    code = "not_found"
    http_status = 404


class Conflict(CourierError):
    code = "conflict"
    http_status = 409


class IllegalTransition(CourierError):
    code = "illegal_transition"
    http_status = 409


class StoreUnavailable(CourierError):
    code = "redis_unavailable"
    http_status = 503


class TooManyConnections(CourierError):
    """A user already has MAX_CONNECTIONS_PER_USER live connections."""

    code = "too_many_connections"
    http_status = 429


class SettingsError(CourierError, ValueError):
    """Settings refused at start: the message is one line naming the setting."""

    code = "bad_settings"


class NotConfigured(CourierError):
    """A setting the call needs is missing (no Redis URL): never a guess."""

    code = "not_configured"
    http_status = 500


class ReplyTimeout(CourierError):
    code = "reply_timeout"
    http_status = 504


class WaitTimeout(CourierError):
    code = "wait_timeout"
    http_status = 504
