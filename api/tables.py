"""Readable tables for the CLI (rich)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

console = Console()


def print_message(msg: dict[str, Any]) -> None:
    head = Table.grid(padding=(0, 2))
    for key in ("id", "user_id", "status", "priority", "attempts", "max_attempts",
                "created_at", "expires_at", "last_error"):
        head.add_row(f"[bold]{key}[/]", str(msg.get(key)))
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
        t.add_row(*(str(x) for x in r))
    console.print(t)
