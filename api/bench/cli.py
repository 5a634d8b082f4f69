"""The ``courier bench`` command group."""

from __future__ import annotations

import typer

bench_app = typer.Typer(help="Benchmarks: enqueue, e2e, peer, raw, connections, drain, overload.",
                        no_args_is_help=True)
