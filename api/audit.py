"""Who did what: one INFO line per operator's action (logger ``courier.audit``).

Every action an admin takes through the API (and so the console): replay, purge,
disconnect, a test message, a sign-in. The line names the token's ``sub``; with
``LOG_FORMAT=json`` the fields ``actor``, ``action`` and ``target`` come as their own
keys too, so ``jq 'select(.logger == "courier.audit")'`` lists them.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("courier.audit")


def record(actor: str, action: str, target: str = "", **details: Any) -> None:
    """``admin ops: replay 3-8f2c... (queued)``; details go in parentheses."""
    rest = ", ".join(f"{k}={v}" for k, v in details.items())
    log.info(
        "admin %s: %s%s%s",
        actor,
        action,
        f" {target}" if target else "",
        f" ({rest})" if rest else "",
        extra={"actor": actor, "action": action, "target": target},
    )
