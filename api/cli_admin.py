"""Operators' commands: ``courier stats``, ``courier dlq list|replay|purge``."""

from __future__ import annotations

import typer

dlq_app = typer.Typer(help="The dead-letter stream.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(dlq_app, name="dlq")
