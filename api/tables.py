"""Readable tables for the CLI (rich).

Nothing is ever cut off: a value a person copies (an id, a URL, a node or consumer
name) stays whole on one line, as wide as its longest value, and the other columns
fold onto more lines when the terminal is narrow (80 columns, or no terminal at all);
a table that cannot fit even so is printed as one block of name/value lines per row.
"""

from __future__ import annotations

from typing import Any

import orjson
from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console()

EMPTY = "-"
WHOLE = frozenset({"id", "url", "node", "consumer", "event", "user"})
"""Columns whose values are copied, not read: never folded nor shortened."""
FOLDED_MIN = 8  # the narrowest a folding column may become and still read well


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
    head.add_column(no_wrap=True)
    head.add_column(overflow="fold")
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
        t.add_column(col, overflow="fold")
    for e in msg["timeline"]:
        detail = cell({k: v for k, v in e.items() if k not in ("at", "event", "attempt")})
        t.add_row(
            escape(cell(e["at"])), escape(cell(e["event"])), cell(e["attempt"]), escape(detail)
        )
    console.print(t)


def print_rows(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    """A table; one block of name/value lines per row instead when the table cannot
    fit the terminal with its ids and URLs whole."""
    cells = [[cell(x) for x in r] for r in rows]
    widths = [max((len(r[i]) for r in cells), default=0) for i in range(len(columns))]
    needed = 1 + sum(
        3 + (max(w, len(c)) if c in WHOLE else min(max(w, len(c)), FOLDED_MIN))
        for c, w in zip(columns, widths, strict=True)
    )
    if needed > console.width and cells:
        return _print_records(title, columns, cells)
    t = Table(title=title)
    for c, w in zip(columns, widths, strict=True):
        if c in WHOLE:
            t.add_column(c, no_wrap=True, min_width=max(w, len(c)), overflow="fold")
        else:
            t.add_column(c, overflow="fold")
    for r in cells:
        t.add_row(*(escape(x) for x in r))
    console.print(t)


def _print_records(title: str, columns: list[str], cells: list[list[str]]) -> None:
    """Each value on its line after its name, never wrapped by rich (soft wrap: the
    terminal shows a long URL on more rows, and it copies whole)."""
    console.print(f"[bold]{escape(title)}[/]")
    pad = max(len(c) for c in columns)
    for r in cells:
        for c, value in zip(columns, r, strict=True):
            console.print(f"[bold]{escape(c.ljust(pad))}[/]  {escape(value)}", soft_wrap=True)
        console.print()


def print_pairs(pairs: list[tuple[str, Any]]) -> None:
    """Name/value lines, names in bold."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    for name, value in pairs:
        grid.add_row(f"[bold]{name}[/]", escape(cell(value)))
    console.print(grid)
