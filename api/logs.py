"""Logging set-up for the CLI: one short line per lifecycle event, JSON on request
(``COURIER_LOG_FORMAT=json``) so one message can be followed across processes."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime

import orjson

AUDIT_KEYS = ("actor", "action", "target")  # api/audit.py: who did what to what
_ESCAPES = str.maketrans({"\n": "\\n", "\r": "\\r", "\u2028": "\\u2028", "\u2029": "\\u2029"})


class TextFormatter(logging.Formatter):
    """One line per record whatever its arguments hold: a newline in a value (a user id,
    a header, a frame) is written as ``\\n`` and cannot forge a second log line.
    Tracebacks keep their lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return super().formatMessage(record).translate(_ESCAPES)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in ("message_id", "user_id", "conn_id", "node_id", *AUDIT_KEYS):
            if hasattr(record, key):
                out[key] = getattr(record, key)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out).decode()


def configure(level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            TextFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
