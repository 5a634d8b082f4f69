"""Webhook endpoints and Standard Webhooks signatures (no I/O).

An endpoint is where a service wants the events of :mod:`delivery.events` POSTed: its
id, URL, ``whsec_`` secret, the event types it wants, and its own request timeout and
concurrency cap. Endpoints come from ``COURIER_WEBHOOKS`` (a JSON list, checked at start
by :func:`parse_endpoints`) and from the admin API (stored in Redis,
:mod:`delivery.webhook_store`). Every request is signed as the Standard Webhooks spec
says (https://www.standardwebhooks.com): headers ``webhook-id`` (the event id, the same
on every retry: receivers dedupe by it), ``webhook-timestamp`` (unix seconds of this
attempt) and ``webhook-signature`` (``v1,`` + base64 HMAC-SHA256 of
``id.timestamp.body`` with the secret's bytes). It is a dozen lines of ``hmac``: the
tests verify it with the ``standardwebhooks`` package, which a hand-written check would
not prove.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from typing import Any, Literal
from urllib.parse import urlsplit

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic import ValidationError as PydanticValidationError

from .events import EventType
from .exceptions import ValidationError

SECRET_PREFIX = "whsec_"
SECRET_BYTES = (24, 64)  # the spec's range for a secret's length
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
USER_AGENT = "Courier-Webhooks/1"


class Endpoint(BaseModel):
    """One webhook endpoint. ``timeout_seconds`` and ``max_in_flight`` default to the
    settings ``COURIER_WEBHOOK_TIMEOUT_SECONDS`` and ``COURIER_WEBHOOK_MAX_IN_FLIGHT``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    url: str
    secret: str
    events: tuple[EventType, ...] | None = None  # None: every type
    service: str | None = Field(default=None, max_length=200)  # who owns it (a label)
    timeout_seconds: float | None = Field(default=None, gt=0, le=120)
    max_in_flight: int | None = Field(default=None, ge=1, le=1000)
    enabled: bool = True
    source: Literal["settings", "api"] = "api"

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not ID_PATTERN.match(v):
            raise ValueError(
                "1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit"
            )
        return v

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"an http:// or https:// URL with a host, not {v!r}")
        return v

    @field_validator("secret")
    @classmethod
    def _secret(cls, v: str) -> str:
        secret_bytes(v)
        return v

    @field_validator("events", mode="before")
    @classmethod
    def _events(cls, v: Any) -> Any:
        if v is None or v == "*" or (isinstance(v, list | tuple) and "*" in v):
            return None
        if isinstance(v, str):
            v = [v]
        if isinstance(v, list | tuple) and not v:
            raise ValueError("name at least one event type, or '*' for all")
        return v

    def wants(self, t: EventType) -> bool:
        return self.enabled and (self.events is None or t in self.events)

    def public(self) -> dict[str, Any]:
        """The endpoint as the admin API and CLI show it (never its secret)."""
        out = self.model_dump(mode="json", exclude={"secret"})
        out["events"] = ["*"] if self.events is None else [e.value for e in self.events]
        return out

    def stored(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json", exclude={"source"}))


def secret_bytes(secret: str) -> bytes:
    """The key bytes of a ``whsec_`` secret; ValueError says what is wrong with it."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("must start with whsec_ (whsec_ + base64 of 24 to 64 random bytes)")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("after whsec_ must come base64 (of 24 to 64 random bytes)") from None
    lo, hi = SECRET_BYTES
    if not lo <= len(key) <= hi:
        raise ValueError(f"its key is {len(key)} bytes; a secret has {lo} to {hi}")
    return key


def new_secret() -> str:
    """A fresh secret: whsec_ + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,<base64 HMAC-SHA256>``."""
    mac = hmac.new(secret_bytes(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def signed_headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
    }


def endpoint_from(data: Any, *, source: Literal["settings", "api"]) -> Endpoint:
    """One endpoint from JSON data; :class:`ValidationError` with one line on what is
    wrong (the field and why)."""
    if not isinstance(data, dict):
        raise ValidationError(f"an endpoint is a JSON object, not {type(data).__name__}")
    try:
        return Endpoint.model_validate({**data, "source": source})
    except PydanticValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(x) for x in err["loc"]) or "endpoint"
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise ValidationError(f"{where}: {msg}") from None


def parse_endpoints(raw: str, setting: str = "COURIER_WEBHOOKS") -> list[Endpoint]:
    """The endpoints of the setting (a JSON list of objects). Anything wrong raises
    :class:`ValidationError` whose one line names the setting, the endpoint and why."""
    if not raw.strip():
        return []
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise ValidationError(f"{setting} is not JSON: {e}") from None
    if not isinstance(data, list):
        raise ValidationError(
            f"{setting} must be a JSON list of endpoints, not {type(data).__name__}"
        )
    out: list[Endpoint] = []
    seen: set[str] = set()
    for i, item in enumerate(data):
        name = item.get("id") if isinstance(item, dict) else None
        label = f"{setting}[{i}]" + (f" ({name!r})" if isinstance(name, str) else "")
        try:
            ep = endpoint_from(item, source="settings")
        except ValidationError as e:
            raise ValidationError(f"{label}: {e.detail}") from None
        if ep.id in seen:
            raise ValidationError(f"{label}: id {ep.id!r} is used twice")
        seen.add(ep.id)
        out.append(ep)
    return out
