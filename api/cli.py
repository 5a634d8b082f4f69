"""The ``courier`` command."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import typer

from delivery.settings import Settings

from . import cli_admin, logs
from .cli_common import BENCH_HINT, check_settings, print_json, run_query
from .cli_common import settings as _settings

if TYPE_CHECKING:
    from .runtime import Runtime

app = typer.Typer(help="Courier: guaranteed message delivery to users.", no_args_is_help=True)
log = logging.getLogger("courier")

# Command groups that live outside the product (today only `bench`, in the top-level
# bench/ package) plug in through this entry-point group of pyproject.toml, so nothing
# here imports them.
PLUGINS = "courier.commands"


@app.command()
def serve(
    host: str | None = typer.Option(None, help="Interface to listen on [COURIER_HOST]."),
    port: int | None = typer.Option(None, help="Port [COURIER_PORT]."),
    consumers: bool = typer.Option(True, help="Run consumers and scheduler in this process."),
) -> None:
    """HTTP + WebSocket edge + consumers + scheduler in one process."""
    from .app import create_app
    from .redis_server import RedisServer
    from .server import Server, config

    had_secret = bool(Settings().jwt_secret)
    settings = _settings(make_secret=True, host=host, port=port)
    check_settings(settings)
    if not Settings().redis_url:
        settings = settings.model_copy(update={"redis_url": None})
    logs.configure(settings.log_level, settings.log_format)
    if not had_secret:
        typer.echo(
            f"No COURIER_JWT_SECRET set: using the one kept in {settings.data_dir}/jwt.secret."
        )
    embedded = None
    url_file = Path(settings.data_dir) / "redis.url"
    if not settings.redis_url:
        embedded = RedisServer(Path(settings.data_dir) / "redis").start()
        url_file.write_text(embedded.url)
        settings = settings.model_copy(update={"redis_url": embedded.url})
        typer.echo(
            f"No COURIER_REDIS_URL set: started an embedded Redis at {embedded.url} "
            f"(data in {embedded.data_dir}, AOF on)."
        )
    base = f"http://{settings.host}:{settings.port}"
    typer.echo(
        f"Courier on {base}  (API docs {base}/docs, WebSocket ws://{settings.host}:"
        f"{settings.port}/v1/ws)\n"
        f"Try:  courier token alice            # a user token for the WebSocket\n"
        f"      courier token backend --role service   # may POST {base}/v1/messages"
    )
    _examples_banner(settings)
    # uvicorn re-raises SIGTERM after its graceful shutdown; make that a normal exit so
    # the embedded Redis below is stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        # Server closes WebSockets with 1001 and hands unacked messages back before
        # uvicorn's own shutdown (which would close them with 1012).
        server = Server(config(create_app(settings, consumers=consumers), settings), settings)
        server.run()
        if not server.started:
            raise typer.Exit(3)
    finally:
        if embedded is not None:
            embedded.stop()
            url_file.unlink(missing_ok=True)


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
    check_settings(settings)
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
    role: str = typer.Option("user", help="user, service or admin"),
    ttl: int = typer.Option(3600, help="Seconds until it expires."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Print a token signed with COURIER_JWT_SECRET, for trying things out."""
    from .auth import issue

    jwt = issue(_settings(), user, role=role, ttl=ttl)
    if json_out:
        out = {"token": jwt, "user_id": user, "role": role, "expires_in": ttl}
        typer.echo(orjson.dumps(out).decode())
        return
    typer.echo(jwt)


@app.command()
def send(
    user: str,
    payload: str = typer.Argument(..., help="The payload, as JSON."),
    priority: str = typer.Option("normal", help="high, normal or low"),
    delay: float | None = typer.Option(None, help="Deliver after this many seconds."),
    ttl: int | None = typer.Option(None, help="Seconds until it expires."),
    escalate_after: float | None = typer.Option(
        None, help="`undelivered` when no device acked it this many seconds after it was due."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Enqueue one message for a user."""
    from delivery.exceptions import CourierError
    from delivery.producer import SyncProducer

    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError as e:
        raise typer.BadParameter(f"payload is not JSON: {e}") from None
    producer = SyncProducer.from_settings(_settings())
    try:
        a = producer.send(
            user,
            body,
            priority=priority,
            delay_seconds=delay,
            ttl_seconds=ttl,
            escalate_after_seconds=escalate_after,
        )
    except CourierError as e:
        typer.echo(f"error: {e.detail}", err=True)
        raise typer.Exit(2) from None
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
