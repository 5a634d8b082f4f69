"""Readable tables for the CLI (rich)."""

from __future__ import annotations

from typing import Any

import orjson
from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console()


def print_message(msg: dict[str, Any]) -> None:
    head = Table.grid(padding=(0, 2))
    for key in (
        "id",
        "user_id",
        "status",
        "priority",
        "attempts",
        "max_attempts",
        "created_at",
        "expires_at",
        "ttl_seconds",
        "delivered_at",
        "last_error",
    ):
        if key in msg:
            head.add_row(f"[bold]{key}[/]", str(msg.get(key)))
    if "reply" in msg:
        head.add_row("[bold]reply[/]", escape(orjson.dumps(msg["reply"]).decode()))
    console.print(head)
    t = Table(title="timeline")
    for col in ("at", "event", "attempt", "detail"):
        t.add_column(col)
    for e in msg["timeline"]:
        detail = ", ".join(f"{k}={v}" for k, v in e.items() if k not in ("at", "event", "attempt"))
        t.add_row(e["at"], e["event"], str(e["attempt"]), detail)
    console.print(t)


def print_rows(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    t = Table(title=title)
    for c in columns:
        t.add_column(c)
    for r in rows:
        t.add_row(*(escape(str(x)) for x in r))
    console.print(t)


def print_pairs(pairs: list[tuple[str, Any]]) -> None:
    """Name/value lines, names in bold."""
    grid = Table.grid(padding=(0, 2))
    for name, value in pairs:
        grid.add_row(f"[bold]{name}[/]", escape(str(value)))
    console.print(grid)
