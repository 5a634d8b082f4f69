"""What the ``courier`` commands share: settings (and which Redis they talk to), one
async query against Redis, confirmations, JSON output and the install hint of the
optional ``bench`` group.

``api/cli.py`` and ``api/cli_admin.py`` both import this module; it imports neither.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import orjson
import typer
import typer.core

if TYPE_CHECKING:
    from delivery.settings import Settings

    from .runtime import Runtime

T = TypeVar("T")


def _flags_take_no_value() -> None:
    """Help without a type after a flag: this typer prints ``--json <bool>``, which
    reads as if the flag took a value (``--version <bool>``). A flag shows none."""
    shown = typer.core.TyperOption.display_type_rich

    def display_type_rich(self: typer.core.TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag else shown(self, ctx)

    typer.core.TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_flags_take_no_value()

JSON_OPT = typer.Option(False, "--json", help="Print JSON.")
YES_OPT = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation.")

BENCH_HINT = (
    "courier bench needs the `bench` extra{why}. From a source checkout, ./scripts/bootstrap "
    "installs it (requirements/dev.txt), or: .venv/bin/pip install -e '.[bench]'."
)


def fail(message: str, code: int = 1) -> NoReturn:
    """End the command with one line on stderr."""
    typer.echo(f"courier: {message}", err=True)
    raise typer.Exit(code)


def settings(*, redis: bool = True, make_secret: bool = False, **overrides: Any) -> Settings:
    """The servers' settings (``COURIER_*``, the data folder's secret), with overrides.

    With `redis`, the Redis URL is ``COURIER_REDIS_URL`` or the running instance's
    (api/instance.py), answered a PING, and one line on stderr says which it is;
    otherwise the command ends in one line. Settings that make no sense end the
    command with one line too (exit 2)."""
    from delivery.exceptions import SettingsError

    from .instance import InstanceError, resolve_redis, shown_url
    from .preflight import check_key_layout, check_redis
    from .runtime import load_settings

    try:
        s = load_settings(make_secret=make_secret, redis=False, **overrides)
        if not redis:
            return s
        url, source = resolve_redis(s.redis_url, s.data_dir)
        version = check_redis(url, source=source, cluster=s.redis_cluster)
        s = s.model_copy(update={"redis_url": url})
        check_key_layout(s)
    except SettingsError as e:
        fail(e.detail, 2)
    except InstanceError as e:
        fail(str(e))
    typer.echo(f"courier: using Redis {version} at {shown_url(url)} ({source})", err=True)
    return s


def run_query(fn: Callable[[Runtime], Awaitable[T]]) -> T:
    """Run one async query against Redis; Courier errors end the command with code 1."""
    from redis.exceptions import RedisError

    from delivery.exceptions import CourierError

    from .runtime import Runtime

    s = settings()

    async def go() -> T:
        rt = Runtime.build(s, with_consumers=False)
        try:
            return await fn(rt)
        finally:
            await rt.close()

    try:
        return asyncio.run(go())
    except CourierError as e:
        typer.echo(f"error: {e.detail}", err=True)
        raise typer.Exit(1) from None
    except RedisError as e:
        fail(f"Redis at {s.redis_url} failed: {type(e).__name__}: {e}")


def confirm(question: str, *, yes: bool) -> None:
    """Ask before a destructive action; --yes skips it. Without a terminal to ask on,
    the command refuses (exit 2) rather than guess."""
    if yes:
        return
    if not sys.stdin.isatty():
        fail(f"{question} Refused: no terminal to confirm on; add --yes.", code=2)
    if not typer.confirm(question, default=False):
        typer.echo("Nothing done.")
        raise typer.Exit(1)


def print_json(data: Any) -> None:
    typer.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
