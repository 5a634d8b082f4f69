"""Settings, read once at the edge of the program (environment, prefix ``COURIER_``).

Everything below the CLI and the app factory takes a :class:`Settings` object (or
plain keyword arguments) instead of reading the environment itself.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from .exceptions import NotConfigured, SettingsError
from .keys import EVENTS_MAX_LEN, Keyspace
from .members import check_id
from .redis_clients import cluster_seed


class PartitionTags(StrEnum):
    """The partitions' hash tags (delivery/keys.py): ``spread`` (one per slot range),
    ``pk`` (``{pK}``, what every deployment used before), ``auto``: spread on Redis
    Cluster, ``pk`` on a single server."""

    AUTO = "auto"
    SPREAD = "spread"
    PK = "pk"


class JwtAlgorithm(StrEnum):
    """The token algorithms the edge verifies (``none`` is not one of them)."""

    HS256 = "HS256"
    HS384 = "HS384"
    HS512 = "HS512"
    RS256 = "RS256"
    RS384 = "RS384"
    RS512 = "RS512"
    PS256 = "PS256"
    PS384 = "PS384"
    PS512 = "PS512"
    ES256 = "ES256"
    ES384 = "ES384"
    ES512 = "ES512"
    EDDSA = "EdDSA"

    @property
    def symmetric(self) -> bool:
        """HS*: verified with the shared ``JWT_SECRET``; the others with ``JWT_PUBLIC_KEY``."""
        return self.value.startswith("HS")


def default_data_dir() -> str:
    """The per-user data folder: ``$XDG_DATA_HOME/courier``, else
    ``~/.local/share/courier`` (the XDG Base Directory default)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return str(Path(base) / "courier")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COURIER_", extra="ignore")

    # None: `courier serve` starts an embedded redis-server in data_dir, and the other
    # commands use the one a running `courier serve` started there (api/instance.py).
    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("COURIER_REDIS_URL", "REDIS_URL")
    )
    # The URL names one node of a Redis Cluster (same as a redis+cluster:// URL).
    redis_cluster: bool = False
    key_prefix: str = "courier"
    partitions: int = Field(default=8, ge=1, le=1024)
    partition_tags: PartitionTags = PartitionTags.AUTO
    # an accepted enqueue waits for this many replicas (WAIT), else 503 not_replicated
    sync_replicas: int = Field(default=0, ge=0, le=16)
    sync_timeout_ms: int = Field(default=100, ge=1, le=60_000)
    # One absolute place, whatever the working directory (see data_dir_absolute).
    data_dir: str = Field(default_factory=default_data_dir)

    # None: `courier serve` makes a random one and keeps it in data_dir/jwt.secret.
    jwt_secret: str | None = None
    jwt_algorithm: JwtAlgorithm = JwtAlgorithm.HS256
    jwt_public_key: str | None = None

    host: str = "127.0.0.1"
    port: int = 8000
    # `courier worker` serves its own /metrics on this port (host: `host`) when set.
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    node_id: str | None = None

    ack_timeout_seconds: float = Field(default=30, gt=0)
    max_attempts: int = Field(default=5, ge=1, le=100)
    retry_base_seconds: float = Field(default=1, gt=0)
    retry_max_seconds: float = Field(default=900, gt=0)
    park_ttl_seconds: int = Field(default=604800, gt=0)
    default_ttl_seconds: int = Field(default=604800, gt=0)
    max_ttl_seconds: int = Field(default=30 * 86400, gt=0)
    retention_seconds: int = Field(default=86400, ge=0)
    max_payload_bytes: int = Field(default=65536, gt=0)
    max_recipients: int = Field(default=1000, ge=1)
    max_batch: int = Field(default=1000, ge=1)

    heartbeat_interval_seconds: float = Field(default=30, gt=0)
    heartbeat_timeout_seconds: float = Field(default=60, gt=0)
    max_connections: int = Field(default=10000, ge=1)
    allowed_origins: str = "*"
    max_frame_bytes: int = Field(default=65536, gt=0)
    rate_limit_per_second: float = Field(default=50, gt=0)
    rate_limit_burst: int = Field(default=200, ge=1)
    send_queue_size: int = Field(default=1000, ge=1)
    # characters of frames queued for one connection and not yet on its socket (and
    # bytes in its socket's buffer): past it the connection is closed as a slow reader
    send_queue_bytes: int = Field(default=4 * 1024 * 1024, ge=65536)
    drain_window: int = Field(default=1000, ge=1)
    # messages pushed to one connection and not acked: past it the connection is closed
    max_unacked: int = Field(default=10000, ge=1)
    # live connections of one user (whole deployment); one more is refused with 4429
    max_connections_per_user: int = Field(default=100, ge=1)

    # HTTP (and the WebSocket handshake) before a request's head is complete: what an
    # unauthenticated peer may cost (api/http_limits.py)
    max_header_bytes: int = Field(default=16384, ge=1024, le=1048576)
    max_headers: int = Field(default=100, ge=8, le=1000)
    header_timeout_seconds: float = Field(default=10, gt=0, le=300)
    keepalive_timeout_seconds: float = Field(default=5, gt=0, le=3600)
    max_pending_handshakes: int = Field(default=1000, ge=1)
    # permessage-deflate for clients that offer it (browsers do): less bandwidth, but
    # ~45 KB of zlib state per such connection on the edge.
    ws_compression: bool = True
    # A source checkout's examples/ and clients/js/src/ at /examples/, /clients/js/src/
    # and /client/ (api/examples.py); a wheel or the image has none to serve.
    serve_examples: bool = True

    read_count: int = Field(default=100, ge=1)
    read_block_ms: int = Field(default=1000, ge=10)
    # lifecycle events a webhook dispatcher read and did not fan out (it died) are taken
    # over after this long (messages: after ack_timeout_seconds, see consumers/worker.py)
    claim_idle_seconds: float = Field(default=30, gt=0)
    poison_deliveries: int = Field(default=5, ge=1)
    scheduler_interval_seconds: float = Field(default=0.25, gt=0)

    # Each consumers process beats this often (a zset in Redis); one silent for three
    # beats counts as gone in courier_consumers_alive.
    consumer_heartbeat_seconds: float = Field(default=5, gt=0)

    # /docs, /redoc and /openapi.json; false turns them off (production).
    api_docs: bool = True

    # Lifecycle events for producers (delivery/events.py): appended by the scripts that
    # make each change, to one bounded stream per partition. Off: no event is written
    # (producer.wait falls back to polling, webhooks and producer.events get nothing).
    events: bool = True
    events_max_len: int = Field(default=EVENTS_MAX_LEN, ge=1000)
    # `undelivered` for messages not acked this long after enqueue (their own
    # escalate_after_seconds wins); None: only messages that ask for it.
    escalate_after_seconds: float | None = Field(default=None, gt=0)

    # Webhooks (docs/operations.md): endpoints as a JSON list, checked at start
    # (delivery/webhooks.py: parse_endpoints); more come from the admin API.
    webhooks: str = ""
    webhook_delivery: bool = True  # run the webhook dispatcher in worker and serve
    webhook_timeout_seconds: float = Field(default=10, gt=0, le=120)
    webhook_max_in_flight: int = Field(default=8, ge=1, le=1000)
    webhook_max_attempts: int = Field(default=16, ge=1, le=100)
    webhook_retry_base_seconds: float = Field(default=5, gt=0)
    webhook_retry_max_seconds: float = Field(default=3600, gt=0)

    log_level: str = "INFO"
    log_format: str = "text"

    def __init__(self, **values: Any) -> None:
        """Settings that make no sense are refused with one line (:class:`SettingsError`)
        naming the setting, instead of pydantic's report."""
        try:
            super().__init__(**values)
        except PydanticValidationError as e:
            raise SettingsError(_one_line(e)) from None

    @model_validator(mode="after")
    def _coherent(self) -> Settings:
        for problem in _incoherent(self):
            raise ValueError(problem)
        return self

    @field_validator("data_dir")
    @classmethod
    def data_dir_absolute(cls, v: str) -> str:
        """``~`` expanded and made absolute once, so every command of every working
        directory finds the same folder."""
        return str(Path(v).expanduser().absolute())

    def require_redis_url(self) -> str:
        """The Redis URL; :class:`NotConfigured` when there is none (never a guess)."""
        if not self.redis_url:
            raise NotConfigured(
                "no Redis URL: set COURIER_REDIS_URL, or pass api.runtime.load_settings(), "
                "which finds the running `courier serve`"
            )
        return self.redis_url

    @property
    def cluster(self) -> bool:
        """The Redis URL (or ``REDIS_CLUSTER``) names a Redis Cluster."""
        return (
            bool(self.redis_url)
            and cluster_seed(self.redis_url or "", self.redis_cluster) is not None
        )

    def keyspace(self) -> Keyspace:
        """The deployment's key names: prefix, partitions and their hash tags."""
        tags = self.partition_tags
        spread = tags is PartitionTags.SPREAD or (tags is PartitionTags.AUTO and self.cluster)
        return Keyspace(self.key_prefix, self.partitions, spread=spread, sharded=self.cluster)

    @field_validator("node_id")
    @classmethod
    def _node_id(cls, v: str | None) -> str | None:
        # presence members are "node|conn": a node id never holds the separator
        return None if v is None else check_id(v, "node_id")

    def origins(self) -> list[str] | None:
        """The allowed origins, or None for any."""
        raw = self.allowed_origins.strip()
        if raw in ("", "*"):
            return None
        return [o.strip().rstrip("/") for o in raw.split(",") if o.strip()]


def _one_line(e: PydanticValidationError) -> str:
    err = e.errors()[0]
    loc = [str(x) for x in err.get("loc", ())]
    msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    if not loc:
        return msg
    name = "COURIER_" + loc[0].upper()
    got = err.get("input")
    shown = "" if isinstance(got, dict) or got is None else f" (got {str(got)[:60]!r})"
    more = f" (and {len(e.errors()) - 1} more)" if len(e.errors()) > 1 else ""
    return f"{name}: {msg}{shown}{more}"


def _incoherent(s: Settings) -> list[str]:
    """Combinations of settings that cannot work, each as one sentence."""
    out = []
    if s.heartbeat_timeout_seconds <= s.heartbeat_interval_seconds:
        out.append(
            "COURIER_HEARTBEAT_TIMEOUT_SECONDS must be longer than "
            "COURIER_HEARTBEAT_INTERVAL_SECONDS (clients ping every interval)"
        )
    if s.retry_max_seconds < s.retry_base_seconds:
        out.append("COURIER_RETRY_MAX_SECONDS must be at least COURIER_RETRY_BASE_SECONDS")
    if s.max_ttl_seconds < s.default_ttl_seconds:
        out.append("COURIER_MAX_TTL_SECONDS must be at least COURIER_DEFAULT_TTL_SECONDS")
    if s.max_frame_bytes > s.send_queue_bytes:
        out.append("COURIER_SEND_QUEUE_BYTES must be at least COURIER_MAX_FRAME_BYTES")
    if s.max_payload_bytes * 2 > s.send_queue_bytes:
        out.append("COURIER_SEND_QUEUE_BYTES must hold two frames of COURIER_MAX_PAYLOAD_BYTES")
    if s.max_unacked < s.drain_window:
        out.append("COURIER_MAX_UNACKED must be at least COURIER_DRAIN_WINDOW")
    if s.rate_limit_burst < 2:
        out.append("COURIER_RATE_LIMIT_BURST must allow a ping and an ack (at least 2)")
    key = (s.jwt_public_key or "").strip()
    if s.jwt_algorithm.symmetric and key:
        out.append(
            f"COURIER_JWT_ALGORITHM {s.jwt_algorithm.value} verifies with COURIER_JWT_SECRET, "
            "yet COURIER_JWT_PUBLIC_KEY is set: choose an asymmetric algorithm (RS256, "
            "ES256, ...) for a public key, or unset it"
        )
    if s.jwt_algorithm.symmetric and (s.jwt_secret or "").lstrip().startswith("-----BEGIN"):
        out.append(
            f"COURIER_JWT_SECRET looks like a PEM key: {s.jwt_algorithm.value} would use it "
            "as a shared secret; use an asymmetric algorithm with COURIER_JWT_PUBLIC_KEY"
        )
    if not s.jwt_algorithm.symmetric and not key:
        out.append(f"COURIER_JWT_ALGORITHM {s.jwt_algorithm.value} needs COURIER_JWT_PUBLIC_KEY")
    if s.webhook_retry_max_seconds < s.webhook_retry_base_seconds:
        out.append(
            "COURIER_WEBHOOK_RETRY_MAX_SECONDS must be at least COURIER_WEBHOOK_RETRY_BASE_SECONDS"
        )
    out += _webhook_problems(s.webhooks)
    return out


def _webhook_problems(raw: str) -> list[str]:
    """COURIER_WEBHOOKS as delivery/webhooks.py reads it: what is wrong, in one line."""
    from .exceptions import ValidationError
    from .webhooks import parse_endpoints

    try:
        parse_endpoints(raw)
    except ValidationError as e:
        return [e.detail]
    return []
