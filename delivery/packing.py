"""Commands packed into the Redis protocol by hiredis (C) instead of redis-py (Python).

redis-py's asyncio connection builds every command's bytes in Python, an ``encode`` and
a few joins per argument: ~21 µs for an ``EVALSHA`` of 45 arguments (an ``ack_many``
call of a dozen messages), where ``hiredis.pack_command`` takes ~3 µs for the same
bytes. The edge packs one such call per batch of acks and of dispatches, so the server
spends a few µs less per delivered message (docs/benchmarks.md, "Edge cost per message
after the changes").

:class:`PackedConnection` is a drop-in ``redis.asyncio.Connection``: the same bytes,
and redis-py's own packing for what hiredis cannot take (a command name holding a
space, such as ``"CONFIG GET"``, which redis-py splits; an argument that is not str,
bytes, int or float, such as a memoryview; a client whose encoding is not UTF-8).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.connection import Connection
from redis.typing import EncodableT


def _splits(first: Any) -> bool:
    """redis-py splits a command name with spaces into several arguments."""
    return (isinstance(first, str) and " " in first) or (isinstance(first, bytes) and b" " in first)


class PackedConnection(Connection):
    """A TCP connection whose commands hiredis packs (see the module's docstring)."""

    def _hiredis_packs(self) -> bool:
        enc = self.encoder
        encoding: str = enc.encoding
        return encoding.lower().replace("-", "") == "utf8" and enc.encoding_errors == "strict"

    def pack_command(self, *args: EncodableT) -> list[bytes]:
        if args and not _splits(args[0]) and self._hiredis_packs():
            try:
                return [hiredis.pack_command(args)]  # type: ignore[arg-type]  # TypeError below
            except TypeError:  # an argument hiredis does not take: redis-py's way
                pass
        return super().pack_command(*args)

    def pack_commands(self, commands: Iterable[Iterable[EncodableT]]) -> list[bytes]:
        if not self._hiredis_packs():
            return super().pack_commands(commands)
        out: list[bytes] = []
        for cmd in commands:
            out += self.pack_command(*cmd)
        return [b"".join(out)]


def use_packed(pool: aioredis.ConnectionPool) -> aioredis.ConnectionPool:
    """Make the pool's new TCP connections :class:`PackedConnection` (a Unix socket or
    TLS pool keeps its own class); returns the pool."""
    if pool.connection_class is Connection:
        pool.connection_class = PackedConnection
    return pool
