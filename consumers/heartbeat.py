"""Consumers' own liveness: every consumers process (``courier serve``, ``courier
worker``) writes its name and the Redis server time into one zset every
``CONSUMER_HEARTBEAT_SECONDS``; ``courier_consumers_alive`` and ``courier stats`` count
the members that beat within three intervals.

The group's ``XINFO CONSUMERS`` idle time cannot tell: on Redis 7.0 a reader blocked in
``XREADGROUP`` on empty streams looks idle for as long as nothing arrives, so a quiet
night would read as "no consumers".
"""

from __future__ import annotations

import logging

import redis.asyncio as aioredis

from delivery import clock
from delivery.keys import Keyspace

log = logging.getLogger(__name__)

FORGET_MS = 86_400_000  # members silent for a day are dropped by the next beat


class Heartbeat:
    def __init__(
        self, client: aioredis.Redis, *, keyspace: Keyspace, consumer: str, interval: float
    ) -> None:
        self.redis = client
        self.key = keyspace.consumer_beats
        self.consumer = consumer
        self.interval = interval

    async def beat(self) -> float:
        """One beat at Redis server time; returns the rest until the next."""
        now = await clock.server_ms(self.redis)
        async with self.redis.pipeline(transaction=True) as pipe:  # one key: MULTI
            pipe.zadd(self.key, {self.consumer: now})
            pipe.zremrangebyscore(self.key, "-inf", now - FORGET_MS)
            await pipe.execute()
        return self.interval

    async def leave(self) -> None:
        """A clean stop: this consumer is gone at once, not three beats later."""
        try:
            await self.redis.zrem(self.key, self.consumer)
        except Exception:  # Redis may be gone at shutdown; the beat then ages out
            log.warning("could not remove the heartbeat of %s", self.consumer, exc_info=True)
