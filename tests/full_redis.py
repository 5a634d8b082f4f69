"""A private redis-server that a test can fill up: ``maxmemory`` just above what it
holds, with the ``noeviction`` policy Courier needs, then junk until Redis refuses
writes (OOM); ``free()`` lifts the limit and drops the junk."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis.asyncio as aioredis
from redis.exceptions import OutOfMemoryError

from api.redis_server import RedisServer


class FullRedis:
    def __init__(self, server: RedisServer) -> None:
        self.server = server
        self.url = server.url
        self.junk = 0

    def client(self) -> aioredis.Redis:
        return aioredis.Redis.from_url(self.url)

    async def fill(self, junk_bytes: int = 4 << 20) -> None:
        """Junk, then ``maxmemory`` 1 MB below what Redis holds: every write that could
        grow memory is refused until :meth:`free` (a limit just above the usage would
        let small writes through again as soon as a refused command's buffer frees)."""
        r = self.client()
        try:
            for _ in range(junk_bytes // 16384):
                await r.set(f"junk:{self.junk}", b"x" * 16384)
                self.junk += 1
            used = int((await r.info("memory"))["used_memory"])
            await r.config_set("maxmemory", max(used - (1 << 20), 1 << 20))
            with contextlib.suppress(OutOfMemoryError):
                await r.set("probe", 1)
                raise AssertionError("Redis still takes writes")
        finally:
            await r.aclose()

    async def free(self) -> None:
        r = self.client()
        try:
            await r.config_set("maxmemory", 0)
            for i in range(0, self.junk, 500):
                await r.delete(*(f"junk:{k}" for k in range(i, min(i + 500, self.junk))))
            self.junk = 0
        finally:
            await r.aclose()


@contextmanager
def private_redis(tmp_path: Path) -> Iterator[FullRedis]:
    """A private redis-server for one test (see :class:`FullRedis`); a module's fixture
    wraps it (``with private_redis(tmp_path) as full: yield full``)."""
    with RedisServer(tmp_path / "redis", appendfsync="no") as server:
        yield FullRedis(server)
