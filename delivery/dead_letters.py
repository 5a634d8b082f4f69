"""Operators' actions on the dead-letter streams: replay one message, purge one, purge all.

Replay and purge of a message whose hash still exists are the store's atomic scripts
(``replay.lua``, ``purge.lua``). A dead-letter entry can outlive its message (the hash
expires after its retention, the entry stays until the stream is trimmed): such
orphans are deleted by their entry id, which is a single command.
"""

from __future__ import annotations

import logging

import redis.asyncio as aioredis

from .exceptions import Conflict, NotFound
from .fields import MessageField
from .keys import Keyspace, partition_from_id
from .queries import Queries
from .status import Status
from .store import Store

log = logging.getLogger(__name__)


class DeadLetters:
    def __init__(self, client: aioredis.Redis, *, keyspace: Keyspace, store: Store) -> None:
        self.redis = client
        self.keyspace = keyspace
        self.store = store
        self.queries = Queries(client, keyspace=keyspace)

    async def replay(self, message_id: str, *, by: str = "operator") -> Status:
        """A fresh cycle of attempts (see :meth:`Store.replay`: NotFound, Conflict)."""
        return await self.store.replay(message_id, by=by)

    async def purge(self, message_id: str) -> int:
        """Remove a message's dead-letter entries (the message stays dead); returns how
        many entries went. :class:`NotFound` when there was none."""
        try:
            partition = partition_from_id(message_id)
        except ValueError:
            raise NotFound(f"no dead letter {message_id!r}") from None
        removed = 0
        try:
            await self.store.purge(message_id)
            removed = 1
        except NotFound:
            pass  # the hash expired: only orphan entries can be left
        except Conflict:
            status = await self.redis.hget(self.keyspace.msg(message_id), MessageField.STATUS)
            if status is not None and status != Status.DEAD.encode():
                raise
        if not removed:  # orphans: entries whose message hash is gone (a slow scan)
            entries = [
                e
                for e, mid in await self.queries.dead_letter_entries(partition)
                if mid == message_id
            ]
            if entries:
                removed = await self.redis.xdel(self.keyspace.key(partition, "dlq"), *entries)
        if not removed:
            raise NotFound(f"no dead letter for message {message_id!r}")
        log.info("dead letter %s purged", message_id, extra={"message_id": message_id})
        return removed

    async def replay_all(self, *, by: str = "operator") -> int:
        """Replay every dead message of every partition's stream; how many were.
        Entries whose message is no longer dead (replayed meanwhile, or gone) are left."""
        total = 0
        for p in range(self.keyspace.partitions):
            for _entry, mid in await self.queries.dead_letter_entries(p):
                try:
                    await self.store.replay(mid, by=by)
                except (NotFound, Conflict):
                    continue
                total += 1
        log.info("replayed %d dead letters", total)
        return total

    async def purge_all(self) -> int:
        """Empty every partition's dead-letter stream; returns how many entries went."""
        total = 0
        for p in range(self.keyspace.partitions):
            key = self.keyspace.key(p, "dlq")
            for entry_id, mid in await self.queries.dead_letter_entries(p):
                purged = 0
                try:
                    await self.store.purge(mid)  # removes the entry the message points to
                    purged = 1
                except (NotFound, Conflict):
                    pass  # an orphan, or replayed meanwhile: the entry alone goes
                total += purged + await self.redis.xdel(key, entry_id)
        log.info("purged %d dead letters", total)
        return total
