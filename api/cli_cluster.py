"""``courier cluster ...``: where each partition lives on a Redis Cluster, and moving
partitions between masters one at a time (delivery/resharding.py), e.g. onto a master
just added with ``redis-cli --cluster add-node``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import redis
import typer

from .cli_common import JSON_OPT, fail, print_json
from .cli_common import settings as _settings

if TYPE_CHECKING:
    from delivery.keys import Keyspace

cluster_app = typer.Typer(help="Partitions on a Redis Cluster.", no_args_is_help=True)


def _seed() -> tuple[str, Keyspace]:
    from delivery.redis_clients import cluster_seed

    s = _settings()
    seed = cluster_seed(s.require_redis_url(), s.redis_cluster)
    if seed is None:
        fail("COURIER_REDIS_URL is not a Redis Cluster (redis+cluster://host:port)", 2)
    return seed, s.keyspace()


@cluster_app.command("status")
def status(json_out: bool = JSON_OPT) -> None:
    """Each partition: its hash tag, slot, master and keys; partitions per master."""
    from delivery.resharding import status as places

    seed, ks = _seed()
    rows = [p.__dict__ for p in places(seed, ks)]
    if json_out:
        return print_json({"partitions": rows})
    from . import tables

    columns = ["partition", "tag", "slot", "master", "keys"]
    tables.print_rows("partitions", columns, [[r[c] for c in columns] for r in rows])
    per: dict[str, int] = {}
    for r in rows:
        per[r["master"]] = per.get(r["master"], 0) + 1
    for master, n in sorted(per.items()):
        typer.echo(f"{master}: {n} partitions")


@cluster_app.command("move")
def move(
    partition: int = typer.Argument(..., help="The partition to move."),
    to: str = typer.Option(..., "--to", help="host:port of the master to move it to."),
) -> None:
    """Move one partition (its slot) to another master. Its scripts are refused with
    503 + Retry-After while it moves; nothing is lost."""
    from delivery.resharding import move as move_one

    seed, ks = _seed()
    if not 0 <= partition < ks.partitions:
        fail(f"no partition {partition}: PARTITIONS is {ks.partitions}", 2)
    try:
        n = move_one(seed, ks, partition, to)
    except ValueError as e:
        fail(str(e), 2)
    except redis.RedisError as e:
        fail(
            f"moving partition {partition} stopped: {e}; its slot is still migrating (its "
            "scripts answer 503): run the same command again to finish the move"
        )
    typer.echo(
        f"partition {partition}: {n} keys moved to {to}"
        if n
        else f"partition {partition} is on {to} already"
    )


@cluster_app.command("rebalance")
def rebalance() -> None:
    """Move partitions, one at a time, until every master holds as many (+-1)."""
    from delivery.resharding import rebalance as run

    seed, ks = _seed()
    moves = run(seed, ks)
    for part, src, dst in moves:
        typer.echo(f"partition {part}: {src} -> {dst}")
    if not moves:
        typer.echo("balanced already")
