"""What the ``courier`` commands share: settings, one async query against Redis, JSON
output and the install hint of the optional ``bench`` group.

``api/cli.py`` and ``api/cli_admin.py`` both import this module; it imports neither.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
import typer

if TYPE_CHECKING:
    from delivery.settings import Settings

    from .runtime import Runtime

T = TypeVar("T")

JSON_OPT = typer.Option(False, "--json", help="Print JSON.")

BENCH_HINT = (
    "courier bench needs the `bench` extra{why}. From a source checkout install it with: "
    "COURIER_EXTRAS=bench ./scripts/bootstrap (or .venv/bin/pip install -e '.[bench]')."
)


def settings(*, make_secret: bool = False, **overrides: Any) -> Settings:
    """The servers' settings (``COURIER_*``, the data folder's secret), with overrides."""
    from .runtime import load_settings

    return load_settings(make_secret=make_secret, **overrides)


def check_settings(s: Settings) -> None:
    """Settings that are text to parse (the webhook endpoints) are checked before anything
    starts: a bad one ends the command with one line that names it (exit 2)."""
    from delivery.exceptions import ValidationError
    from delivery.webhooks import parse_endpoints

    try:
        parse_endpoints(s.webhooks)
    except ValidationError as e:
        typer.echo(f"courier: bad setting {e.detail}", err=True)
        raise typer.Exit(2) from None


def run_query(fn: Callable[[Runtime], Awaitable[T]]) -> T:
    """Run one async query against Redis; Courier errors end the command with code 1."""
    from delivery.exceptions import CourierError

    from .runtime import Runtime

    async def go() -> T:
        rt = Runtime.build(settings(), with_consumers=False)
        try:
            return await fn(rt)
        finally:
            await rt.close()

    try:
        return asyncio.run(go())
    except CourierError as e:
        typer.echo(f"error: {e.detail}", err=True)
        raise typer.Exit(1) from None


def print_json(data: Any) -> None:
    typer.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
