#!/usr/bin/env python3
"""A small Courier WebSocket client: connect with a token, print messages, ack them,
send heartbeats, reconnect with backoff and jitter (all of it courier_client's).

    python scripts/client.py --url ws://127.0.0.1:8000/v1/ws --token "$(courier token alice)"

Each message is printed on stdout as one JSON line (the `message` frame), and so are
live frames (topic, tasks, broadcast); connection events go to stderr. Duplicates
(same id, a redelivery) are acked again but printed once. Ctrl-C closes the socket
cleanly (1000) and exits 0. Exit codes: 0 done, 2 the server refused the token or the
user (4401/4403), 1 other errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

try:
    from courier_client import ClientEvent, CourierClient, CourierClientError, Disconnected, Refused
except ImportError:  # a checkout run by a Python without the editable install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "clients" / "python"))
    from courier_client import ClientEvent, CourierClient, CourierClientError, Disconnected, Refused

LIVE = ("topic", "tasks", "broadcast", "subscribed", "unsubscribed")


def log(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)


def out(frame: dict[str, Any]) -> None:
    print(json.dumps(frame, separators=(",", ":")), flush=True)


def make_client(args: argparse.Namespace) -> CourierClient:
    client = CourierClient(
        args.url,
        token=args.token,
        auth=args.auth,
        ack_delay=args.ack_delay,
        min_reconnect_delay=args.backoff_base,
        max_reconnect_delay=args.backoff_max,
    )
    client.on(
        "connected", lambda f: log(f"connected as {f['user_id']} (connection {f['connection_id']})")
    )

    def lost(d: Disconnected) -> None:
        log(f"connection lost: {d.code} {d.reason}".rstrip())

    def error(e: ClientEvent) -> None:
        log(f"error {e.code}: {e.detail}")

    def duplicate(f: dict[str, Any]) -> None:
        log(f"duplicate {f['id']} (attempt {f.get('attempt')}): acked again")

    client.on("disconnected", lost)
    client.on("error", error)
    client.on("duplicate", duplicate)
    client.on("reconnecting", lambda delay: log(f"reconnecting in {delay:.2f} s"))
    for kind in LIVE:
        client.on(kind, out)
    return client


async def consume(client: CourierClient, max_messages: int | None) -> None:
    printed = 0
    async for msg in client.messages():
        out(msg.frame)
        printed += 1
        if max_messages is not None and printed >= max_messages:
            msg.ack()  # the last one is acked before we leave the loop
            break


async def amain(args: argparse.Namespace) -> int:
    try:
        client = make_client(args)
    except ValueError as e:
        log(f"bad arguments: {e}")
        return 1
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with client:
        reader = asyncio.create_task(consume(client, args.max_messages))
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({reader, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if not reader.done():
            await client.close()  # Ctrl-C: the reader ends with the client
        try:
            await reader
        except Refused as e:
            log(f"refused: {e}")
            return 2
        except CourierClientError as e:
            log(f"stopped: {e}")
            return 1
    return 0


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--url", default="ws://127.0.0.1:8000/v1/ws", help="the edge's WebSocket URL")
    p.add_argument("--token", required=True, help="a user token (courier token USER)")
    p.add_argument(
        "--auth",
        choices=["query", "header", "subprotocol"],
        default="query",
        help="how to send the token (default: query)",
    )
    p.add_argument(
        "--max-messages", type=int, default=None, help="exit after this many distinct messages"
    )
    p.add_argument(
        "--ack-delay",
        type=float,
        default=0.05,
        help="seconds to gather acks into one batch (default 0.05)",
    )
    p.add_argument("--backoff-base", type=float, default=0.5)
    p.add_argument("--backoff-max", type=float, default=30.0)
    return p.parse_args(argv)


def main() -> int:
    return asyncio.run(amain(parse()))


if __name__ == "__main__":
    sys.exit(main())
