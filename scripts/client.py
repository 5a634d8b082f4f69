#!/usr/bin/env python3
"""A small Courier WebSocket client: connect with a token, print messages, ack them,
send heartbeats, reconnect with backoff and jitter.

    python scripts/client.py --url ws://127.0.0.1:8000/v1/ws --token "$(courier token alice)"

Each message is printed on stdout as one JSON line (the `message` frame); connection
events go to stderr. Duplicates (same id, a redelivery) are acked again but printed
once. Ctrl-C closes the socket cleanly (1000) and exits 0. Exit codes: 0 done,
2 the server refused the token or the user (4401/4403), 1 other errors.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import signal
import sys
import time
from collections import OrderedDict
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

FATAL = {4401: "bad or missing token", 4403: "user or origin not allowed"}
SEEN_MAX = 10_000


class Refused(Exception):
    pass


def log(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)


def backoff(attempt: int, *, base: float, cap: float) -> float:
    """Exponential backoff with full jitter: uniform(0, min(cap, base * 2**attempt))."""
    return random.uniform(0, min(cap, base * 2**attempt))


class Client:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.seen: OrderedDict[str, None] = OrderedDict()  # ids printed, for dedupe
        self.printed = 0
        self.stop = asyncio.Event()

    def connect(self) -> Any:
        a = self.args
        url, headers, protocols = a.url, {}, None
        if a.auth == "query":
            url += ("&" if "?" in url else "?") + f"token={a.token}"
        elif a.auth == "header":
            headers["Authorization"] = f"Bearer {a.token}"
        else:
            protocols = ["bearer", a.token]
        return connect(
            url,
            additional_headers=headers,
            subprotocols=protocols,
            open_timeout=10,
            max_size=None,
        )

    async def run(self) -> int:
        failures = 0
        while not self.stop.is_set():
            try:
                async with self.connect() as ws:
                    failures = 0
                    await self.session(ws)
            except Refused as e:
                log(f"refused: {e}")
                return 2
            except (OSError, InvalidHandshake, ConnectionClosed, TimeoutError) as e:
                log(f"connection lost: {type(e).__name__}: {e}")
            if self.done or self.stop.is_set():
                return 0
            delay = backoff(failures, base=self.args.backoff_base, cap=self.args.backoff_max)
            failures += 1
            log(f"reconnecting in {delay:.2f} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), delay)
        return 0

    @property
    def done(self) -> bool:
        return self.args.max_messages is not None and self.printed >= self.args.max_messages

    async def session(self, ws: ClientConnection) -> None:
        try:
            await self.serve(ws)
        except ConnectionClosed as e:
            code = e.rcvd.code if e.rcvd else None
            if code in FATAL:
                raise Refused(f"{code} {FATAL[code]}: {e.rcvd.reason if e.rcvd else ''}") from None
            raise

    async def serve(self, ws: ClientConnection) -> None:
        hello = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if hello.get("type") != "connected":
            raise ConnectionError(f"expected a connected frame, got {hello}")
        log(f"connected as {hello['user_id']} (connection {hello['connection_id']})")
        acks: list[str] = []
        wake = asyncio.Event()
        tasks = [
            asyncio.create_task(self.heartbeat(ws, float(hello["heartbeat_interval"]))),
            asyncio.create_task(self.acker(ws, acks, wake)),
        ]
        stopper = asyncio.create_task(self.stop.wait())
        try:
            while not self.done:
                recv = asyncio.create_task(ws.recv())
                await asyncio.wait({recv, stopper, *tasks}, return_when=asyncio.FIRST_COMPLETED)
                for t in tasks:
                    if t.done():
                        t.result()  # a failed heartbeat or ack: raise it
                if not recv.done():
                    recv.cancel()
                    break
                self.handle(json.loads(recv.result()), acks, wake)
            await self.flush(ws, acks)
            await ws.close(1000, "bye")
        finally:
            for waiting in (*tasks, stopper):
                waiting.cancel()
            await asyncio.gather(*tasks, stopper, return_exceptions=True)

    def handle(self, frame: dict[str, Any], acks: list[str], wake: asyncio.Event) -> None:
        kind = frame.get("type")
        if kind == "message":
            mid = frame["id"]
            acks.append(mid)
            wake.set()
            if mid in self.seen:
                log(f"duplicate {mid} (attempt {frame.get('attempt')}): acked again")
                return
            self.seen[mid] = None
            if len(self.seen) > SEEN_MAX:
                self.seen.popitem(last=False)
            self.printed += 1
            print(json.dumps(frame, separators=(",", ":")), flush=True)
        elif kind == "error":
            log(f"error {frame.get('code')}: {frame.get('detail')}")
        elif kind != "pong":
            print(json.dumps(frame, separators=(",", ":")), flush=True)

    async def acker(self, ws: ClientConnection, acks: list[str], wake: asyncio.Event) -> None:
        """Ack in batches: wait a moment after the first unacked message, then send all."""
        while True:
            await wake.wait()
            await asyncio.sleep(self.args.ack_delay)
            wake.clear()
            await self.flush(ws, acks)

    @staticmethod
    async def flush(ws: ClientConnection, acks: list[str]) -> None:
        while acks:
            batch, acks[:] = acks[:1000], acks[1000:]
            frame = (
                {"type": "ack", "id": batch[0]}
                if len(batch) == 1
                else {"type": "ack", "ids": batch}
            )
            await ws.send(json.dumps(frame))

    @staticmethod
    async def heartbeat(ws: ClientConnection, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await ws.send(json.dumps({"type": "ping", "ts": int(time.time() * 1000)}))


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
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


async def amain(args: argparse.Namespace) -> int:
    client = Client(args)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, client.stop.set)
    try:
        return await client.run()
    except InvalidURI as e:
        log(f"bad URL: {e}")
        return 1


def main() -> int:
    return asyncio.run(amain(parse()))


if __name__ == "__main__":
    sys.exit(main())
