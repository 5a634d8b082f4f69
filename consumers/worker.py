"""Consumer-group workers: read the priority streams of one or more partitions,
dispatch each entry (send, park or expire it, atomically) and push what was sent.

One ``XREADGROUP`` reads the streams of every partition a reader owns, and the entries
it returns are dispatched with one pipelined round trip (one script call per partition
and batch): a wake-up costs the same whether it brings one message or hundreds.
``process_one()`` handles one batch and is what tests drive; the runner loops
``process_next()`` on one server (its next read travels with the dispatch, see
``readahead.py``) and ``process_one()`` on Redis Cluster.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from delivery.fields import EntryField
from delivery.keys import GROUP, PRIORITIES, Keyspace
from delivery.metrics import BURIED, DISPATCHED, RECLAIMED
from delivery.store import Dispatched, Entry, Store
from delivery.text import text
from delivery.transport import Transport

from .readahead import OwnConnection, ReadAheadClient, parse_read, read_command
from .resilience import transient

log = logging.getLogger(__name__)

FULL_SCAN_EVERY = 16
"""Every so many reclaim passes (4 s at the scheduler's 0.25 s), each stream's whole
pending list is scanned, not only its front (see ``reclaim.lua``)."""

# entry fields, as the reply holds them
_MESSAGE, _USER = EntryField.MESSAGE.encode(), EntryField.USER.encode()
_PAYLOAD, _CREATED = EntryField.PAYLOAD.encode(), EntryField.CREATED_AT.encode()
_COLLAPSE, _TOPIC = EntryField.COLLAPSE_KEY.encode(), EntryField.TOPIC.encode()
_REPLY, _KEEP = EntryField.REPLY_REQUESTED.encode(), EntryField.KEEP.encode()


class Worker:
    def __init__(
        self,
        client: aioredis.Redis,
        *,
        store: Store,
        transport: Transport,
        keyspace: Keyspace,
        consumer: str,
        read_count: int = 100,
        block_ms: int = 1000,
        poison_deliveries: int = 5,
    ) -> None:
        self.redis = client
        self.store = store
        self.transport = transport
        self.keyspace = keyspace
        self.consumer = consumer
        self.read_count = read_count
        self.block_ms = block_ms
        self.poison_deliveries = poison_deliveries
        self._stream_priority = {
            self.keyspace.stream(p, prio): (p, prio)
            for p in range(keyspace.partitions)
            for prio in PRIORITIES
        }
        self._read_streams: dict[tuple[int, ...], dict[Any, Any]] = {}
        self._cursors: dict[int, tuple[str, str, str, str]] = {}  # reclaim scans
        self._passes = 0
        self._read_commands: dict[tuple[Any, ...], list[Any]] = {}
        # process_next(): dispatch on the reader's own connection, with its next read
        self._own = OwnConnection(client)
        self._ahead = ReadAheadClient(client, self._own)
        ahead: Any = self._ahead  # the part of a client that Store.dispatch uses
        self._ahead_store = Store(ahead, keyspace=store.keyspace, timing=store.timing)

    async def ensure_groups(self, partitions: Sequence[int] | None = None) -> None:
        """Create the consumer group on every stream (idempotent)."""
        for p in partitions if partitions is not None else range(self.keyspace.partitions):
            for stream in self.keyspace.group_streams(p):
                try:
                    await self.redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
                except ResponseError as e:
                    if "BUSYGROUP" not in str(e):
                        raise

    async def process_one(
        self, partitions: int | Sequence[int], *, block_ms: int | None = None
    ) -> int:
        """Read one batch of new entries of one or more partitions (one XREADGROUP,
        at most ``read_count`` per stream) and dispatch it; returns its size.

        The partitions' keys must be legal in one command: any on one server, only
        those of one slot on Redis Cluster (see :func:`consumers.runner.read_groups`)."""
        parts = (partitions,) if isinstance(partitions, int) else tuple(partitions)
        streams = self._streams(parts)
        block = self.block_ms if block_ms is None else block_ms
        try:
            resp = await self.redis.xreadgroup(
                GROUP, self.consumer, streams, count=self.read_count, block=block or None
            )
        except ResponseError as e:
            await self._recreate_groups(e, parts)
            return 0
        entries = self._entries(resp)
        await self._deliver(await self._dispatch_or_forgive(entries))
        return len(entries)

    async def _recreate_groups(self, error: ResponseError, parts: tuple[int, ...]) -> None:
        """A read answered NOGROUP: Redis lost its data (no AOF); make the groups again
        and go on. Any other error is raised."""
        if "NOGROUP" not in str(error):
            raise error
        log.warning("consumer group missing on partitions %s; recreating", list(parts))
        await self.ensure_groups(parts)

    async def process_next(self, partitions: Sequence[int]) -> int:
        """:meth:`process_one` as the runner's reader loops it on one Redis server: on
        the reader's own connection, the next read goes out with this batch's dispatch
        (see :mod:`consumers.readahead`); returns the batch's size."""
        parts = tuple(partitions)
        key = (parts, self.read_count, self.block_ms)
        read = self._read_commands.get(key)
        if read is None:
            streams = list(self._streams(parts))
            read = read_command(
                self.consumer, streams, count=self.read_count, block_ms=self.block_ms
            )
            self._read_commands[key] = read
        try:
            if not self._own.pending:
                await self._own.send_read(read)
            raw = await self._own.take_read()
        except ResponseError as e:
            await self._recreate_groups(e, parts)
            return 0
        except BaseException:
            await self._own.reset()
            raise
        entries = self._entries(parse_read(raw))
        self._ahead.next_read = read
        try:
            results = await self._dispatch_or_forgive(entries, via=self._ahead_store)
        except ResponseError:
            raise  # every reply was read: the connection is in step
        except BaseException:
            await self._own.reset()
            raise
        finally:
            self._ahead.next_read = None
        # The reader's connection is in step again (only the next read is out on it):
        # a failure from here on (transport, pool) must not drop that read.
        await self._deliver(results)
        return len(entries)

    async def close(self) -> None:
        await self._own.reset()

    def _streams(self, parts: tuple[int, ...]) -> dict[Any, Any]:
        streams = self._read_streams.get(parts)
        if streams is None:  # high streams of every partition first, then normal, then low
            streams = {self.keyspace.stream(p, prio): ">" for prio in PRIORITIES for p in parts}
            self._read_streams[parts] = streams
        return streams

    async def handle(self, entries: Sequence[Entry], *, via: Store | None = None) -> None:
        """Dispatch entries (highest priority first, in stream order within a priority)
        in one round trip (through ``via``'s client, default the worker's store) and
        push the sent ones."""
        await self._deliver(await self._dispatch(entries, via=via))

    async def _dispatch(
        self, entries: Sequence[Entry], *, via: Store | None = None
    ) -> list[Dispatched]:
        if not entries:
            return []
        entries = sorted(entries, key=lambda e: PRIORITIES.index(e.priority))
        return await (via or self.store).dispatch(entries)

    async def _deliver(self, results: list[Dispatched]) -> None:
        """Count the outcomes and push what was sent; connections no node heard are
        forgotten and their messages retried at once."""
        if not results:
            return
        pushes = []
        outcomes: Counter[tuple[str, str]] = Counter()
        for e, outcome, push in results:
            outcomes[(e.priority, outcome)] += 1
            if push is not None:
                pushes.append(push)
        for (prio, label), n in outcomes.items():
            DISPATCHED.labels(prio, label).inc(n)
        if log.isEnabledFor(logging.DEBUG):  # one line per message, to follow it around
            for e, outcome, push in results:
                log.debug(
                    "message %s %s%s",
                    e.message_id,
                    outcome,
                    f" to {len(push.targets)} connection(s), attempt {push.attempt}"
                    if push is not None
                    else "",
                    extra={"message_id": e.message_id, "user_id": e.user_id},
                )
        if not pushes:
            return
        lost = await self.transport.push(pushes)
        if lost:
            # Their connections are gone (node dead, socket closed): forget those
            # connections, then retry, which parks the message if none is left.
            for p in lost:
                await self.store.evict(p.user_id, p.targets, own_node=self.consumer)
            await self.store.nack(lost, reason="unreachable")

    async def reclaim(self, partitions: int | Sequence[int]) -> int:
        """Sort out what has been pending past the ack timeout (one ``reclaim.lua``
        call per partition, one round trip): entries a dead consumer read and never
        dispatched are dispatched here (dead-lettered as poison when claimed too often),
        sent messages whose ack did not come are retried after their backoff delay.
        Returns how many entries it took."""
        parts = [partitions] if isinstance(partitions, int) else list(partitions)
        self._passes += 1
        if self._passes % FULL_SCAN_EVERY == 0:  # see what claims hid (reclaim.lua)
            for p in parts:
                self._cursors[p] = tuple(c or "0-0" for c in self._cursors.get(p, ("",) * 4))  # type: ignore[assignment]
        found = await self.store.reclaim(
            parts,
            consumer=self.consumer,
            cursors=self._cursors,
            count=self.read_count,
            poison_deliveries=self.poison_deliveries,
        )
        total = 0
        entries: list[Entry] = []
        counts: dict[str, int] = {}  # deliveries of the entries to dispatch
        for p, got in zip(parts, found, strict=True):
            self._cursors[p] = got.cursors  # type: ignore[assignment]
            for entry_id, mid in got.buried:
                BURIED.inc()
                log.warning("poison entry %s of message %s dead-lettered", entry_id, mid)
            for prio, entry_id, deliveries, fields in got.entries:
                entries.append(self._entry(self.keyspace.stream(p, prio), entry_id, fields))
                counts[entry_id] = deliveries
            if got.overdue:
                await self.store.retry_overdue(p, got.overdue)
            n = len(got.buried) + len(got.entries) + len(got.overdue)
            if n:
                log.info("reclaimed %d pending entries on partition %d", n, p)
            total += n
        if entries:
            RECLAIMED.inc(len(entries))
            await self._deliver(await self._dispatch_or_forgive(entries, counts=counts))
        return total

    async def _dispatch_or_forgive(
        self,
        entries: Sequence[Entry],
        *,
        via: Store | None = None,
        counts: dict[str, int] | None = None,
    ) -> list[Dispatched]:
        """Dispatch; when Redis refused it (full, failing over, away), set the entries'
        delivery counts back to what they were before this delivery, and raise.

        Poison means "this entry makes its consumer fail", and the pending list counts
        every delivery: without this, entries that waited out a full Redis were
        dead-lettered as poison once it had refused them POISON_DELIVERIES times. A
        refused dispatch wrote nothing (the scripts refuse whole, see
        ``refuse_when_full``), so nothing else needs undoing. `counts`: the deliveries
        the pending list reported (default 1: entries just read)."""
        try:
            return await self._dispatch(entries, via=via)
        except Exception as e:
            if transient(e) and entries:
                await self._forgive(entries, counts or {})
            raise

    async def _forgive(self, entries: Sequence[Entry], counts: dict[str, int]) -> None:
        by_count: dict[tuple[str, int], list[Any]] = {}
        for e in entries:
            before = max(counts.get(e.entry_id, 1) - 1, 0)
            key = (self.keyspace.stream(e.partition, e.priority), before)
            by_count.setdefault(key, []).append(e.entry_id)
        try:  # XCLAIM is no write Redis refuses when full
            pipe = self.redis.pipeline(transaction=False)
            for (stream, before), ids in by_count.items():
                pipe.xclaim(stream, GROUP, self.consumer, 0, ids, retrycount=before, justid=True)
            await pipe.execute()
        except Exception as e:  # out of reach: these entries keep one delivery more
            log.info("could not set back the delivery counts of %d entries: %s", len(entries), e)

    def _entries(self, resp: Any) -> list[Entry]:
        out = []
        for stream, items in resp or []:
            where = self._stream_priority[text(stream)]  # once per stream, not per entry
            for entry_id, fields in items:
                if fields:
                    out.append(self._entry_of(where, entry_id, fields))
        return out

    def _entry(self, stream: Any, entry_id: Any, fields: dict[bytes, bytes]) -> Entry:
        return self._entry_of(self._stream_priority[text(stream)], entry_id, fields)

    @staticmethod
    def _entry_of(where: tuple[int, str], entry_id: Any, fields: dict[bytes, bytes]) -> Entry:
        partition, prio = where
        ck, tp = fields.get(_COLLAPSE), fields.get(_TOPIC)
        return Entry(
            partition,
            prio,
            text(entry_id),
            text(fields[_MESSAGE]),
            text(fields[_USER]),
            fields.get(_PAYLOAD, b"null"),
            int(fields.get(_CREATED, 0)),
            None if ck is None else text(ck),
            None if tp is None else text(tp),
            _REPLY in fields,
            _KEEP in fields,
        )
