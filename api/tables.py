"""Readable tables for the CLI (rich)."""

from __future__ import annotations

from typing import Any

import orjson
from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console()

EMPTY = "-"


def cell(value: Any) -> str:
    """A value as a person reads it: no ``None``, no Python reprs of lists or dicts."""
    if value is None or value == "" or value == [] or value == {}:
        return EMPTY
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple | set):
        return ", ".join(cell(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={cell(v)}" for k, v in value.items())
    return str(value)


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
            head.add_row(f"[bold]{key}[/]", escape(cell(msg.get(key))))
    if "reply" in msg:
        head.add_row("[bold]reply[/]", escape(orjson.dumps(msg["reply"]).decode()))
    console.print(head)
    t = Table(title="timeline")
    for col in ("at", "event", "attempt", "detail"):
        t.add_column(col)
    for e in msg["timeline"]:
        detail = cell({k: v for k, v in e.items() if k not in ("at", "event", "attempt")})
        t.add_row(
            escape(cell(e["at"])), escape(cell(e["event"])), cell(e["attempt"]), escape(detail)
        )
    console.print(t)


def print_rows(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    t = Table(title=title)
    for c in columns:
        t.add_column(c)
    for r in rows:
        t.add_row(*(escape(cell(x)) for x in r))
    console.print(t)


def print_pairs(pairs: list[tuple[str, Any]]) -> None:
    """Name/value lines, names in bold."""
    grid = Table.grid(padding=(0, 2))
    for name, value in pairs:
        grid.add_row(f"[bold]{name}[/]", escape(cell(value)))
    console.print(grid)
