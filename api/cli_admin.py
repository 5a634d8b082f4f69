"""Operators' commands: ``courier stats``, ``courier dlq list|replay|purge`` and
``courier user``. Each reads the same settings as the servers (``COURIER_*``), talks
to Redis directly, prints rich tables, or JSON with ``--json``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from .cli_common import JSON_OPT, YES_OPT, confirm, print_json, run_query

if TYPE_CHECKING:
    from .runtime import Runtime

dlq_app = typer.Typer(help="The dead-letter stream.", no_args_is_help=True)


def stats(json_out: bool = JSON_OPT) -> None:
    """Stream depths, pending entries, lag, waiting sets, dead letters, nodes, consumers."""
    from .routes_admin import queries

    async def go(rt: Runtime) -> dict[str, Any]:
        return await queries(rt).stats()

    s = run_query(go)
    if json_out:
        return print_json(s)
    from . import tables

    keys = (
        "time",
        "delayed",
        "inflight",
        "parked",
        "dead_letters",
        "online_users",
        "connections",
        "nodes_alive",
        "consumers_alive",
    )
    tables.print_pairs([(k, s[k]) for k in keys])
    tables.print_rows(
        "streams (all partitions)",
        ["priority", "length", "pending", "lag"],
        [[p, row["length"], row["pending"], row["lag"]] for p, row in s["streams"].items()],
    )
    tables.print_rows(
        "nodes",
        ["node", "alive", "connections", "users", "last seen"],
        [
            [n["node_id"], n["alive"], n["connections"], n["users"], n["last_seen"]]
            for n in s["nodes"]
        ],
    )
    tables.print_rows(
        "consumers",
        ["consumer", "alive", "pending", "last beat"],
        [[c["name"], c["alive"], c["pending"], c["last_beat"]] for c in s["consumers"]],
    )


def user(
    user_id: str,
    status: str | None = typer.Option(None, help="Only messages in this status."),
    limit: int = typer.Option(20, help="How many of the newest messages to list."),
    json_out: bool = JSON_OPT,
) -> None:
    """A user's statistics and newest messages."""
    from .routes_admin import queries

    async def go(rt: Runtime) -> dict[str, Any]:
        q = queries(rt)
        page = await q.user_messages(user_id, status=status, limit=limit)
        return {
            **await q.user_stats(user_id),
            "messages": page.items,
            "next_cursor": page.next_cursor,
        }

    data = run_query(go)
    if json_out:
        return print_json(data)
    from . import tables

    lat = data["ack_latency_ms"]
    tables.print_pairs(
        [
            ("user_id", data["user_id"]),
            ("total", data["total"]),
            ("delivery rate", data["delivery_rate"]),
            ("ack ms mean / p95", f"{tables.cell(lat['mean'])} / {tables.cell(lat['p95'])}"),
            ("devices online", data["online"]["devices"]),
            *((s, n) for s, n in data["counts"].items() if n),
        ]
    )
    tables.print_rows(
        "messages (newest first)",
        ["id", "status", "priority", "attempts", "created", "error"],
        [
            [m["id"], m["status"], m["priority"], m["attempts"], m["created_at"], m["last_error"]]
            for m in data["messages"]
        ],
    )


@dlq_app.command("list")
def dlq_list(
    limit: int = typer.Option(50, help="Entries per page."),
    cursor: str | None = typer.Option(None, help="The next cursor a previous page printed."),
    json_out: bool = JSON_OPT,
) -> None:
    """Dead letters, newest first, with the reason and the last error."""
    from .routes_admin import queries

    async def go(rt: Runtime) -> Any:
        return await queries(rt).dead_letters(limit=limit, cursor=cursor)

    page = run_query(go)
    if json_out:
        return print_json({"dead_letters": page.items, "next_cursor": page.next_cursor})
    from . import tables

    tables.print_rows(
        "dead letters",
        ["id", "user", "reason", "last error", "attempts", "status", "dead at"],
        [
            [
                d["id"],
                d["user_id"],
                d["reason"],
                d["last_error"],
                d["attempts"],
                d["status"],
                d["dead_at"],
            ]
            for d in page.items
        ],
    )
    if page.next_cursor:
        typer.echo(f"more: courier dlq list --cursor {page.next_cursor}")


@dlq_app.command("replay")
def dlq_replay(
    message_id: str | None = typer.Argument(None, help="The dead message to replay."),
    all_: bool = typer.Option(False, "--all", help="Replay every dead letter."),
    yes: bool = YES_OPT,
    json_out: bool = JSON_OPT,
) -> None:
    """Give a dead message (or, with --all, every one) a fresh cycle of attempts."""
    from .routes_admin import dead_letters, queries

    _one_or_all(message_id, all_)

    async def go(rt: Runtime) -> Any:
        if message_id is not None:
            return await dead_letters(rt).replay(message_id, by="cli")
        n = (await queries(rt).stats())["dead_letters"]
        confirm(f"Replay all {n} dead letters (each is delivered again)?", yes=yes)
        return await dead_letters(rt).replay_all(by="cli")

    out = run_query(go)
    if message_id is None:
        if json_out:
            return print_json({"replayed": out})
        typer.echo(f"replayed {out} dead letter{'' if out == 1 else 's'}")
        return
    if json_out:
        return print_json({"id": message_id, "status": out})
    typer.echo(f"{message_id} {out} (a fresh cycle of attempts)")


@dlq_app.command("purge")
def dlq_purge(
    message_id: str | None = typer.Argument(None, help="The message whose entry goes."),
    all_: bool = typer.Option(False, "--all", help="Empty every partition's stream."),
    yes: bool = YES_OPT,
    json_out: bool = JSON_OPT,
) -> None:
    """Remove one message's dead-letter entry, or all of them with --all (asks first)."""
    from .routes_admin import dead_letters, queries

    _one_or_all(message_id, all_)

    async def go(rt: Runtime) -> int:
        dl = dead_letters(rt)
        if message_id is not None:
            confirm(f"Remove the dead-letter entry of {message_id} (it stays dead)?", yes=yes)
            return await dl.purge(message_id)
        n = (await queries(rt).stats())["dead_letters"]
        confirm(f"Remove all {n} dead-letter entries of every partition?", yes=yes)
        return await dl.purge_all()

    n = run_query(go)
    if json_out:
        return print_json({"id": message_id, "purged": n} if message_id else {"purged": n})
    typer.echo(f"purged {n} dead-letter entr{'y' if n == 1 else 'ies'}")


def _one_or_all(message_id: str | None, all_: bool) -> None:
    if (message_id is None) == (not all_):
        typer.echo("error: give a message id or --all (not both)", err=True)
        raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    app.command()(stats)
    app.command()(user)
    app.add_typer(dlq_app, name="dlq")
    from .cli_cluster import cluster_app
    from .cli_webhooks import webhooks_app

    app.add_typer(webhooks_app, name="webhooks")
    app.add_typer(cluster_app, name="cluster")
