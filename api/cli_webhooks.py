"""``courier webhooks ...``: the webhook endpoints with their status, adding and removing
those of the admin API, and their dead deliveries (list, replay, purge). The same
operations as ``/v1/webhooks`` (api/routes_webhooks.py), straight on Redis."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from .cli_common import JSON_OPT, print_json, run_query

if TYPE_CHECKING:
    from .runtime import Runtime

webhooks_app = typer.Typer(help="Webhook endpoints and their deliveries.", no_args_is_help=True)


@webhooks_app.command("list")
def list_endpoints(json_out: bool = JSON_OPT) -> None:
    """Every endpoint with its state, deliveries waiting, dead letters and last result."""

    async def go(rt: Runtime) -> list[dict[str, Any]]:
        return [await rt.webhooks.status(ep) for ep in await rt.webhooks.endpoints()]

    rows = run_query(go)
    if json_out:
        return print_json({"endpoints": rows})
    from . import tables

    tables.print_rows(
        "webhook endpoints",
        [
            "id",
            "source",
            "state",
            "url",
            "events",
            "waiting",
            "dead",
            "delivered",
            "failed",
            "last",
        ],
        [
            [
                r["id"],
                r["source"],
                r["state"],
                r["url"],
                ",".join(r["events"]),
                r["pending"],
                r["dead_letters"],
                r["delivered"],
                r["failed"],
                r["last_result"] or "-",
            ]
            for r in rows
        ],
    )


@webhooks_app.command("add")
def add(
    endpoint_id: str,
    url: str,
    events: str = typer.Option("*", help="Event types, comma separated ('*': all)."),
    secret: str | None = typer.Option(None, help="A whsec_ secret (default: a new one)."),
    timeout: float | None = typer.Option(None, help="Seconds per request."),
    max_in_flight: int | None = typer.Option(None, help="Requests at once, per process."),
    json_out: bool = JSON_OPT,
) -> None:
    """Add or replace an endpoint; prints the secret when it made one."""
    from delivery.webhooks import endpoint_from, new_secret

    data: dict[str, Any] = {
        "id": endpoint_id,
        "url": url,
        "secret": secret or new_secret(),
        "events": [e.strip() for e in events.split(",") if e.strip()],
        "timeout_seconds": timeout,
        "max_in_flight": max_in_flight,
    }

    async def go(rt: Runtime) -> dict[str, Any]:
        ep = endpoint_from(data, source="api")
        created = await rt.webhooks.put(ep)
        return {**await rt.webhooks.status(ep), "created": created}

    out = run_query(go)
    if secret is None:
        out["secret"] = data["secret"]
    if json_out:
        return print_json(out)
    typer.echo(f"{endpoint_id} {'added' if out['created'] else 'replaced'}: {url}")
    if secret is None:
        typer.echo(f"secret (shown once): {data['secret']}")


@webhooks_app.command("remove")
def remove(endpoint_id: str) -> None:
    """Remove an endpoint of the admin API, with the deliveries waiting for it."""

    async def go(rt: Runtime) -> None:
        await rt.webhooks.delete(endpoint_id)

    run_query(go)
    typer.echo(f"{endpoint_id} removed")


@webhooks_app.command("dead")
def dead(endpoint_id: str, limit: int = typer.Option(50), json_out: bool = JSON_OPT) -> None:
    """An endpoint's dead deliveries, newest first."""

    async def go(rt: Runtime) -> list[dict[str, Any]]:
        await rt.webhooks.get(endpoint_id)
        return await rt.webhooks.dead_letters(endpoint_id, limit=limit)

    rows = run_query(go)
    if json_out:
        return print_json({"endpoint": endpoint_id, "dead_letters": rows})
    from . import tables

    tables.print_rows(
        f"dead deliveries of {endpoint_id}",
        ["event", "type", "attempts", "error", "dead at"],
        [[r["event_id"], r["type"], r["attempts"], r["error"], r["dead_at"]] for r in rows],
    )


@webhooks_app.command("replay")
def replay(
    endpoint_id: str,
    event_ids: list[str] | None = typer.Argument(None, help="Events (default: all dead)."),
) -> None:
    """A fresh cycle of attempts, due now, for an endpoint's dead deliveries."""

    async def go(rt: Runtime) -> int:
        return await rt.webhooks.replay(endpoint_id, event_ids or None)

    typer.echo(f"replayed {run_query(go)} deliveries to {endpoint_id}")


@webhooks_app.command("purge")
def purge(
    endpoint_id: str,
    event_ids: list[str] | None = typer.Argument(None, help="Events (default: all dead)."),
) -> None:
    """Drop an endpoint's dead deliveries."""

    async def go(rt: Runtime) -> int:
        return await rt.webhooks.purge(endpoint_id, event_ids or None)

    typer.echo(f"purged {run_query(go)} dead deliveries of {endpoint_id}")
