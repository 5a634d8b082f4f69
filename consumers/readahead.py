"""A reader's own connection to one Redis server, on which the next blocking
``XREADGROUP`` travels with the dispatch of the current batch.

A wake-up of a reader used to take two writes to Redis (the script calls of the batch,
then the next read) and two replies. Here the script calls and the next read go out in
one write; the scripts' replies are read at once, the read's reply stays on the
connection until the reader asks for the next batch. Redis runs the commands of a
connection in order, so the read still sees every entry the scripts left behind.

``Worker.process_next`` uses it for the runner's reader on a single server; Redis
Cluster keeps ``Worker.process_one`` (one reader per partition, on pooled connections).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from delivery.keys import GROUP


class OwnConnection:
    """One connection, outside the pool, that holds at most one unanswered read."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self.conn: Any = None
        self.pending = False  # a read was sent and its reply is not taken yet

    async def send_read(self, command: Sequence[Any], before: Sequence[Sequence[Any]] = ()) -> None:
        """Send ``before`` (script calls) and then the read, in one write."""
        if self.conn is None:
            self.conn = self.client.connection_pool.make_connection()
            await self.conn.connect()
        await self.conn.send_packed_command(self.conn.pack_commands([*before, command]))
        self.pending = True

    async def reply(self) -> Any:
        """The next reply on the connection (an error reply is returned, not raised)."""
        try:
            return await self.conn.read_response()
        except ResponseError as e:
            return e

    async def take_read(self) -> Any:
        """The reply of the read sent last (blocks until Redis answers it)."""
        self.pending = False
        res = await self.reply()
        if isinstance(res, Exception):
            raise res
        return res

    async def reset(self) -> None:
        """Forget the connection (its state is unknown after an error or a cancel)."""
        conn, self.conn, self.pending = self.conn, None, False
        if conn is not None:
            await conn.disconnect()


class ReadAheadClient:
    """What ``Store.dispatch`` needs of a client (``pipeline``, ``script_load``,
    ``register_script``) such that its one pipelined round trip also sends the
    reader's next read. Only the first pipeline after a read was taken does so; any
    other (a retry after ``NOSCRIPT``) goes through the ordinary client."""

    def __init__(self, client: aioredis.Redis, own: OwnConnection) -> None:
        self.client = client
        self.own = own
        self.next_read: Sequence[Any] | None = None

    def register_script(self, script: Any) -> Any:
        return self.client.register_script(script)

    async def script_load(self, script: Any) -> Any:
        return await self.client.script_load(script)

    def pipeline(self, transaction: bool = False) -> Any:
        if self.own.pending or self.next_read is None:
            return self.client.pipeline(transaction=transaction)
        return _ReadAheadPipeline(self.own, self.next_read)


class _ReadAheadPipeline:
    def __init__(self, own: OwnConnection, read: Sequence[Any]) -> None:
        self.own = own
        self.read = read
        self.commands: list[tuple[Any, ...]] = []

    def __len__(self) -> int:  # commands queued, as a redis-py pipeline counts them
        return len(self.commands)

    def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> None:
        self.commands.append(("EVALSHA", sha, numkeys, *keys_and_args))

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        await self.own.send_read(self.read, self.commands)
        results = [await self.own.reply() for _ in self.commands]
        if raise_on_error:
            for r in results:
                if isinstance(r, Exception):
                    raise r
        return results


def read_command(
    consumer: str, streams: Sequence[str], *, count: int, block_ms: int | None
) -> list[Any]:
    """``XREADGROUP`` of new entries of ``streams``, blocking ``block_ms`` (None: not)."""
    cmd: list[Any] = ["XREADGROUP", "GROUP", GROUP, consumer, "COUNT", count]
    if block_ms:
        cmd += ["BLOCK", block_ms]
    return [*cmd, "STREAMS", *streams, *([">"] * len(streams))]


def parse_read(raw: Any) -> list[tuple[Any, list[tuple[Any, dict[bytes, bytes] | None]]]]:
    """A raw ``XREADGROUP`` reply (a map in RESP3, pairs in RESP2; None when the read
    timed out) as redis-py's ``xreadgroup`` returns it."""
    out = []
    for stream, items in raw.items() if isinstance(raw, dict) else raw or []:
        entries = []
        for entry_id, fields in items:
            entries.append(
                (entry_id, dict(zip(fields[::2], fields[1::2], strict=True)) if fields else None)
            )
        out.append((stream, entries))
    return out
