"""``courier admin``: print a one-time link that signs an operator in to the console.

The command signs an admin token with the configured secret (``COURIER_JWT_SECRET``,
or the data folder's), stores it in Redis under a random code for five minutes
(:mod:`console.signin`) and prints ``http://HOST:PORT/admin/#code=...``. Opening the
link trades the code for the token once; the token then lives in that browser tab's
session only.
"""

from __future__ import annotations

import getpass
from typing import TYPE_CHECKING

import orjson
import typer

from api.cli_common import run_query
from api.cli_common import settings as cli_settings
from delivery.keys import SIGN_IN_TTL_S

from . import signin

if TYPE_CHECKING:
    from api.runtime import Runtime

admin_app = typer.Typer(help="The operators' console at /admin.", invoke_without_command=True)


def _operator() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        return "admin"


def base_url(host: str, port: int) -> str:
    """Where the edge answers, as a browser on this machine reaches it."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


@admin_app.callback()
def admin(
    ctx: typer.Context,
    user: str = typer.Option(
        None,
        "--user",
        help="Who signs in: the token's sub, named in the logs (default: your login name).",
    ),
    ttl: int = typer.Option(8 * 3600, help="Seconds the console stays signed in."),
    url: str = typer.Option(
        None,
        help="The edge's address as your browser reaches it (default: the settings' HOST:PORT).",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Print a one-time link to the console (valid 5 minutes, once)."""
    if ctx.invoked_subcommand is not None:
        return
    from api.auth import issue

    s = cli_settings()
    sub = user or _operator()
    token = issue(s, sub, role="admin", ttl=ttl)

    async def go(rt: Runtime) -> str:
        return await signin.create(rt.redis, rt.keyspace, token)

    code = run_query(go)
    link = f"{(url or base_url(s.host, s.port)).rstrip('/')}/admin/#code={code}"
    if json_out:
        out = {"url": link, "user_id": sub, "valid_seconds": SIGN_IN_TTL_S, "session_seconds": ttl}
        typer.echo(orjson.dumps(out).decode())
        return
    typer.echo(f"Open within {SIGN_IN_TTL_S // 60} minutes (works once), signed in as {sub}:")
    typer.echo(link)
