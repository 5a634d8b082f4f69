"""The ``courier bench`` command group: one command per scenario (docs/benchmarks.md).

Each starts what it needs (a private redis-server, ``courier serve``, load generator
processes) unless ``--url`` names a running Courier, prints progress on stderr, a
table at the end and, with ``--json``, one JSON object as its last line.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
import typer

from api.cli_common import BENCH_HINT

bench_app = typer.Typer(
    help="Benchmarks: enqueue, e2e, peer, raw, floor, connections, drain, overload.",
    no_args_is_help=True,
)

USERS = typer.Option(1000, help="Connected WebSocket clients, one user each.")
MESSAGES = typer.Option(100_000, help="Messages, spread over the users.")
RATE = typer.Option(None, help="Messages per second (default: as fast as it goes).")
URL = typer.Option(
    None,
    help="A running Courier (http://host:port); its Redis, prefix and "
    "secret come from the COURIER_* settings.",
)
LOADGENS = typer.Option(1, help="Load generator processes.")
JSON = typer.Option(False, "--json", help="End with one JSON object on the last line.")
QUIET = typer.Option(False, "--quiet", help="No progress lines.")
COMPARE = typer.Option(True, help="Also run Courier's e2e with the same clients and messages.")

BENCH_MODULES = ("psutil", "socketio", "aiohttp", "matplotlib")


@bench_app.callback()
def _needs_the_bench_extra() -> None:
    """Refuse clearly, before starting anything, when the `bench` extra is missing."""
    import importlib.util

    missing = [m for m in BENCH_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        typer.echo(BENCH_HINT.format(why=f" (missing: {', '.join(missing)})"), err=True)
        raise typer.Exit(2)


def _run(coro: Any) -> Any:
    from .procs import run

    logging.basicConfig(level=logging.WARNING)
    return run(coro)


def _ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else 0.0


@bench_app.command()
def e2e(
    users: int = USERS,
    messages: int = MESSAGES,
    rate: float | None = RATE,
    url: str | None = URL,
    loadgens: int = LOADGENS,
    json_out: bool = JSON,
    quiet: bool = QUIET,
    profile: bool = typer.Option(
        False,
        "--profile",
        help="Server CPU per layer (py-spy) and Redis time per script "
        "(SLOWLOG) per delivered message; the profilers slow the run down a little.",
    ),
    redis_url: str | None = typer.Option(
        None,
        help="A running Redis for the Courier the bench starts (redis+cluster://host:port "
        "for a Redis Cluster) instead of a redis-server of its own.",
    ),
    cluster: bool = typer.Option(
        False, "--cluster", help="Start a local Redis Cluster (masters + one replica each)."
    ),
    masters: int = typer.Option(3, min=1, help="Masters of --cluster."),
    replicas: int = typer.Option(1, min=0, help="Replicas per master of --cluster."),
    fsync: str = typer.Option(
        "", help="appendfsync of the Redis the bench starts (default: everysec; --cluster: always)."
    ),
    partitions: int = typer.Option(0, min=0, help="COURIER_PARTITIONS (0: the default)."),
    sync_replicas: int = typer.Option(
        0, min=0, help="The producer WAITs for this many replicas (SYNC_REPLICAS)."
    ),
) -> None:
    """Courier end to end: producer -> streams -> workers -> WebSocket -> ack."""
    from .flows import Opts, run_courier
    from .report import show

    if fsync not in ("", "always", "everysec", "no"):
        raise typer.BadParameter("--fsync: always, everysec or no")
    o = Opts(
        users=users,
        messages=messages,
        rate=rate,
        url=url,
        loadgens=loadgens,
        quiet=quiet,
        profile=profile,
        redis_url=redis_url,
        cluster=cluster,
        masters=masters,
        replicas=replicas,
        appendfsync=fsync or ("always" if cluster else "everysec"),
        server_settings={"partitions": partitions} if partitions else {},
        sync_replicas=sync_replicas,
    )
    res = _run(run_courier(o))
    show([res], title="courier bench e2e", json_out=json_out)


def _versus(
    kind: str,
    users: int,
    messages: int,
    rate: float | None,
    loadgens: int,
    json_out: bool,
    quiet: bool,
    compare: bool,
) -> None:
    from .flows import Opts, run_courier, run_peer, run_raw
    from .report import show

    o = Opts(users=users, messages=messages, rate=rate, loadgens=loadgens, quiet=quiet)

    async def go() -> list[Any]:
        other = await (run_peer(o) if kind == "peer" else run_raw(o))
        return [other, await run_courier(o)] if compare else [other]

    results = _run(go())
    other = results[0]
    notes = []
    if compare:
        mine = results[1]
        ratio = _ratio(mine.throughput_msgs_per_s, other.throughput_msgs_per_s)
        other.extra["e2e_throughput_msgs_per_s"] = round(mine.throughput_msgs_per_s, 1)
        other.extra["e2e_lost"] = mine.lost
        other.extra["e2e_latency_ms"] = mine.latency_ms
        other.extra[f"ratio_e2e_to_{kind}"] = ratio
        other.extra["e2e_cdf_ms"] = mine.extra.get("cdf_ms", [])
        notes.append(f"Courier e2e / {kind} throughput: [bold]{ratio}x[/]")
    show(results, title=f"courier bench {kind}", json_out=json_out, notes=notes)


@bench_app.command()
def peer(
    users: int = USERS,
    messages: int = MESSAGES,
    rate: float | None = RATE,
    loadgens: int = LOADGENS,
    json_out: bool = JSON,
    quiet: bool = QUIET,
    compare: bool = COMPARE,
    peer: str = typer.Option(
        "socketio",
        "--peer",
        help="socketio (python-socketio + its Redis manager), node (Socket.IO 4.8 + "
        "@socket.io/redis-adapter, redis-emitter producer; npm ci on first use) or all.",
    ),
    rounds: int = typer.Option(
        1, min=1, help="Interleaved rounds of every side (the order rotates); ranges."
    ),
) -> None:
    """Courier's e2e beside python-socketio and/or Node Socket.IO: same clients, same
    messages, CPU per message per process role."""
    from .flows import Opts
    from .report import out, show
    from .versus import PEERS, attach_e2e, run_rounds, spread_table, summary

    if peer not in (*PEERS, "all"):
        typer.echo(f"--peer must be one of {', '.join(PEERS)}, all (got {peer!r})", err=True)
        raise typer.Exit(2)
    peers = list(PEERS) if peer == "all" else [peer]
    if "node" in peers:
        from .nodepeer import NodeMissing, tools

        try:
            tools()
        except NodeMissing as e:
            typer.echo(f"courier bench peer: {e}", err=True)
            raise typer.Exit(2) from None
    kinds = [*peers, "e2e"] if compare else peers
    o = Opts(users=users, messages=messages, rate=rate, loadgens=loadgens, quiet=quiet)
    got = _run(run_rounds(o, kinds, rounds))
    summ = summary(got)
    first = got[0]
    main = first[peers[0]]
    if compare:
        for p in peers:
            attach_e2e(first[p], first["e2e"])
    notes = []
    if rounds > 1 or len(kinds) > 2:
        main.extra["rounds"] = rounds
        main.extra["summary"] = summ
        main.extra["runs"] = [r.to_json() for rd in got for r in rd.values()]
    if compare:
        for p in peers:
            ratio = summ[p]["ratio_e2e_to_this"]
            notes.append(
                f"Courier e2e / {p} throughput: [bold]{ratio['min']}x[/]"
                + (f" - {ratio['max']}x" if ratio["max"] != ratio["min"] else "")
            )
    if rounds == 1:
        show(list(first.values()), title="courier bench peer", json_out=False, notes=notes)
    else:
        out.print(spread_table(summ, f"courier bench peer: {rounds} interleaved rounds"))
        for n in notes:
            out.print(n)
    if json_out:
        print(orjson.dumps(main.to_json()).decode(), flush=True)


@bench_app.command()
def raw(
    users: int = USERS,
    messages: int = MESSAGES,
    rate: float | None = RATE,
    loadgens: int = LOADGENS,
    json_out: bool = JSON,
    quiet: bool = QUIET,
    compare: bool = COMPARE,
) -> None:
    """A bare websockets server pushing the same frames (the ceiling), beside e2e."""
    _versus("raw", users, messages, rate, loadgens, json_out, quiet, compare)


@bench_app.command()
def enqueue(
    messages: int = typer.Option(100_000, help="Messages for each side."),
    users: int = typer.Option(1000, help="Recipients, round robin."),
    redis_url: str | None = typer.Option(
        None, help="Use this Redis instead of a private redis-server (keys are prefixed)."
    ),
    concurrency: int = typer.Option(2, help="Batches in flight on each side."),
    json_out: bool = JSON,
    quiet: bool = QUIET,
) -> None:
    """The producer's batch path against a bare pipeline of XADDs (goal: ratio >= 0.5)."""
    from .enqueue import run_enqueue
    from .report import show

    results = _run(
        run_enqueue(
            messages=messages,
            users=users,
            redis_url=redis_url,
            concurrency=concurrency,
            quiet=quiet,
        )
    )
    ratio = results[0].extra["ratio_to_bare"]
    show(
        results,
        title="courier bench enqueue",
        json_out=json_out,
        notes=[f"producer / bare XADD pipeline: [bold]{ratio}[/] (goal >= 0.5)"],
    )


@bench_app.command()
def floor(
    users: int = typer.Option(500, help="Connected WebSocket clients of the e2e run."),
    messages: int = typer.Option(50_000, help="Messages of the e2e run."),
    rounds: int = typer.Option(3, min=1, help="Rounds (e2e, then the isolated measures)."),
    isolated: int = typer.Option(
        24_000, help="Messages per round for today's scripts and for the floor, isolated."
    ),
    cycle: int = typer.Option(3_000, help="Isolated: accept, dispatch, ack this many at a time."),
    benchmark_requests: int = typer.Option(
        50_000, help="redis-benchmark requests per command and pipeline depth."
    ),
    json_out: bool = JSON,
    quiet: bool = QUIET,
) -> None:
    """Redis per delivered message: today's scripts, step by step, against the floor of
    the commands a guaranteed delivery cannot avoid (redis-benchmark, INFO commandstats)."""
    from rich.console import Console

    from .floor import FloorOpts, run_floor
    from .floor_report import show as show_floor

    fo = FloorOpts(
        users=users,
        messages=messages,
        rounds=rounds,
        isolated=max(isolated, cycle),
        cycle=cycle,
        benchmark_requests=benchmark_requests,
        quiet=quiet,
    )
    res = _run(run_floor(fo))
    wide = Console(highlight=False, width=180)  # the tables are wider than a terminal
    wide.print(f"[bold]courier bench floor[/]: {rounds} round(s), ranges min - max")
    show_floor(res.extra["summary"], wide)
    if json_out:
        print(orjson.dumps(res.to_json()).decode(), flush=True)


@bench_app.command()
def connections(
    connections: int = typer.Option(10_000, help="Idle connections to hold."),
    hold: float = typer.Option(20.0, help="Seconds to hold them (heartbeats)."),
    url: str | None = URL,
    json_out: bool = JSON,
    quiet: bool = QUIET,
) -> None:
    """Idle connections with heartbeats on one edge: connect rate, success, memory."""
    from .report import show
    from .scenarios import run_connections

    res = _run(run_connections(connections=connections, hold=hold, url=url, quiet=quiet))
    show([res], title="courier bench connections", json_out=json_out)


@bench_app.command()
def drain(
    backlog: int = typer.Option(10_000, help="Parked messages of one user."),
    url: str | None = URL,
    json_out: bool = JSON,
    quiet: bool = QUIET,
) -> None:
    """A user with a backlog of parked messages connects: time to receive and ack all."""
    from .report import show
    from .scenarios import run_drain

    res = _run(run_drain(backlog=backlog, url=url, quiet=quiet))
    show([res], title="courier bench drain", json_out=json_out)


@bench_app.command()
def overload(
    messages: int = typer.Option(400_000, help="Messages in the burst."),
    users: int = typer.Option(1000, help="Connected clients."),
    window: float = typer.Option(
        60.0,
        help="Seconds each side bursts and delivers before the accounting (what Courier "
        "has not delivered by then stays queued, durably).",
    ),
    loadgens: int = LOADGENS,
    json_out: bool = JSON,
    quiet: bool = QUIET,
    compare: bool = typer.Option(True, help="Also burst the peer (python-socketio)."),
) -> None:
    """A burst far past what delivery takes: Courier loses nothing; the peer's pub/sub may."""
    from .flows import Opts
    from .report import show
    from .scenarios import run_overload_courier, run_overload_peer

    o = Opts(users=users, messages=messages, loadgens=loadgens, quiet=quiet, timeout=75.0)

    async def go() -> list[Any]:
        mine = await run_overload_courier(o, window)
        return [mine, await run_overload_peer(o, window)] if compare else [mine]

    results = _run(go())
    if compare:
        results[0].extra["peer_lost"] = results[1].lost
        results[0].extra["peer_received"] = results[1].extra["received_unique"]
    show(results, title="courier bench overload", json_out=json_out)


@bench_app.command()
def plots(
    results: str = typer.Argument(
        ..., help="Folder of saved --json lines: peer.json and users-<N>.json."
    ),
    out: str = typer.Argument("docs/img", help="Where the PNG files go."),
) -> None:
    """Draw the latency CDF (e2e vs peer) and throughput against users."""
    from pathlib import Path

    from . import plots as p

    src, dst = Path(results), Path(out)
    dst.mkdir(parents=True, exist_ok=True)
    if (src / "peer.json").exists():
        typer.echo(p.latency_cdf(p.load(src / "peer.json"), dst))
    runs = [p.load(f) for f in sorted(src.glob("users-*.json"))]
    if runs:
        typer.echo(p.throughput_users(runs, dst))
