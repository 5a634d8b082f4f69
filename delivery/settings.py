"""Settings, read once at the edge of the program (environment, prefix ``COURIER_``).

Everything below the CLI and the app factory takes a :class:`Settings` object (or
plain keyword arguments) instead of reading the environment itself.
"""

from __future__ import annotations

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .keys import EVENTS_MAX_LEN
from .members import check_id


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COURIER_", extra="ignore")

    # None means "start an embedded redis-server" (courier serve) or 127.0.0.1:6379.
    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("COURIER_REDIS_URL", "REDIS_URL")
    )
    # The URL names one node of a Redis Cluster (same as a redis+cluster:// URL).
    redis_cluster: bool = False
    key_prefix: str = "courier"
    partitions: int = Field(default=8, ge=1, le=1024)
    data_dir: str = ".courier"

    # None: `courier serve` makes a random one and keeps it in data_dir/jwt.secret.
    jwt_secret: str | None = None
    jwt_algorithm: str = "HS256"
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
    drain_window: int = Field(default=1000, ge=1)
    # permessage-deflate for clients that offer it (browsers do): less bandwidth, but
    # ~45 KB of zlib state per such connection on the edge.
    ws_compression: bool = True
    # A source checkout's examples/ and clients/js/src/ at /examples/, /clients/js/src/
    # and /client/ (api/examples.py); a wheel or the image has none to serve.
    serve_examples: bool = True

    read_count: int = Field(default=100, ge=1)
    read_block_ms: int = Field(default=1000, ge=10)
    claim_idle_seconds: float = Field(default=30, gt=0)
    poison_deliveries: int = Field(default=5, ge=1)
    scheduler_interval_seconds: float = Field(default=0.25, gt=0)

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
