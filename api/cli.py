"""The ``courier`` command."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import typer

from delivery.message import Priority
from delivery.settings import Settings

from . import cli_admin, logs
from .auth import Role
from .cli_common import BENCH_HINT, fail, print_json, run_query
from .cli_common import settings as _settings

if TYPE_CHECKING:
    from .runtime import Runtime

app = typer.Typer(help="Courier: guaranteed message delivery to users.", no_args_is_help=True)
log = logging.getLogger("courier")

# Command groups that live outside the product (today only `bench`, in the top-level
# bench/ package) plug in through this entry-point group of pyproject.toml, so nothing
# here imports them.
PLUGINS = "courier.commands"


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"courier {version('courier')}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """Courier: guaranteed message delivery to users."""


@app.command()
def serve(
    host: str | None = typer.Option(None, help="Interface to listen on [COURIER_HOST]."),
    port: int | None = typer.Option(None, min=1, max=65535, help="Port [COURIER_PORT]."),
    consumers: bool = typer.Option(True, help="Run consumers and scheduler in this process."),
) -> None:
    """HTTP + WebSocket edge + consumers + scheduler in one process."""
    from . import launch
    from .instance import InstanceError

    try:
        settings = _settings(redis=False, make_secret=True, host=host, port=port)
        had_secret = bool(Settings().jwt_secret)  # valid: _settings read the same
        code = launch.serve(
            settings,
            consumers=consumers,
            had_secret=had_secret,
            echo=typer.echo,
            after_banner=_examples_banner,
        )
    except InstanceError as e:
        fail(str(e))
    if code:
        raise typer.Exit(code)


def _examples_banner(settings: Settings) -> None:
    """The inbox page's URL, with a user token for `alice` (valid for a day), when the
    checkout's examples are served (api/examples.py)."""
    from .auth import issue
    from .examples import banner

    line = banner(settings, issue(settings, "alice", ttl=86400))
    if line is not None:
        typer.echo(line + "   # the example page, as user alice")


@app.command()
def worker(
    metrics_port: int | None = typer.Option(
        None, help="Serve /metrics on this port [COURIER_METRICS_PORT]; host: COURIER_HOST."
    ),
) -> None:
    """Consumers and scheduler only, for scaling out (no sockets)."""
    settings = _settings(metrics_port=metrics_port)
    logs.configure(settings.log_level, settings.log_format)
    asyncio.run(_run_worker(settings))


async def _run_worker(settings: Settings) -> None:
    from .runtime import Runtime

    rt = Runtime.build(settings, with_consumers=True)
    if settings.metrics_port:  # one scrape target per process (docs/operations.md)
        from prometheus_client import start_http_server

        start_http_server(settings.metrics_port, addr=settings.host)
        log.info("metrics on http://%s:%d/metrics", settings.host, settings.metrics_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    assert rt.consumers is not None
    await rt.consumers.start()
    log.info("worker %s running; SIGTERM to stop", rt.node_id)
    await stop.wait()
    await rt.close()


@app.command()
def token(
    user: str,
    role: Role = typer.Option(Role.USER, help="Who the token is for."),
    ttl: int = typer.Option(3600, min=1, help="Seconds until it expires (> 0)."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Print a token signed with COURIER_JWT_SECRET, for trying things out."""
    from .auth import issue

    s = _settings(redis=False)
    if not s.jwt_secret:
        fail(
            f"no JWT secret: set COURIER_JWT_SECRET, or start `courier serve` once (it keeps "
            f"one in {Path(s.data_dir) / 'jwt.secret'})"
        )
    jwt = issue(s, user, role=role.value, ttl=ttl)
    if json_out:
        out = {"token": jwt, "user_id": user, "role": role.value, "expires_in": ttl}
        typer.echo(orjson.dumps(out).decode())
        return
    typer.echo(jwt)


@app.command()
def send(
    user: str,
    payload: str = typer.Argument(..., help="The payload, as JSON."),
    priority: Priority = typer.Option(Priority.NORMAL),
    delay: float | None = typer.Option(None, min=0, help="Deliver after this many seconds."),
    ttl: int | None = typer.Option(None, min=1, help="Seconds until it expires (> 0)."),
    escalate_after: float | None = typer.Option(
        None,
        min=0,
        help="`undelivered` when no device acked it this many seconds after it was due.",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Enqueue one message for a user."""
    from redis.exceptions import RedisError

    from delivery.exceptions import CourierError
    from delivery.producer import SyncProducer

    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError as e:
        raise typer.BadParameter(f"payload is not JSON: {e}") from None
    s = _settings()
    producer = SyncProducer.from_settings(s)
    try:
        a = producer.send(
            user,
            body,
            priority=priority.value,
            delay_seconds=delay,
            ttl_seconds=ttl,
            escalate_after_seconds=escalate_after,
        )
    except CourierError as e:
        typer.echo(f"error: {e.detail}", err=True)
        raise typer.Exit(2) from None
    except RedisError as e:
        fail(f"Redis at {s.redis_url} failed: {type(e).__name__}: {e}")
    typer.echo(orjson.dumps(a.to_json()).decode() if json_out else f"{a.id} {a.status}")


@app.command()
def status(message_id: str, json_out: bool = typer.Option(False, "--json")) -> None:
    """A message's status and timeline."""
    from .routes_admin import queries

    async def go(rt: Runtime) -> Any:
        return await queries(rt).message(message_id)

    msg = run_query(go)
    if json_out:
        return print_json(msg)
    from . import tables

    tables.print_message(msg)


def _bench_missing() -> None:
    typer.echo(BENCH_HINT.format(why=" (the `bench` package is not installed)"), err=True)
    raise typer.Exit(2)


def _register_groups() -> None:
    """The operators' commands, then the plugged-in groups; `courier bench` says how to
    install it when its package is not here (the Docker image ships without it)."""
    from importlib.metadata import entry_points

    cli_admin.register(app)
    for ep in entry_points(group=PLUGINS):
        try:
            group = ep.load()
        except ImportError as e:
            log.debug("command group %s not available: %s", ep.name, e)
            continue
        app.add_typer(group, name=ep.name)
    if not any(g.name == "bench" for g in app.registered_groups):
        app.command(
            "bench",
            help="Benchmarks (not installed: needs the `bench` extra).",
            add_help_option=False,
            context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        )(_bench_missing)


_register_groups()


def main() -> None:  # pragma: no cover
    app(prog_name="courier")


if __name__ == "__main__":  # pragma: no cover
    main()
