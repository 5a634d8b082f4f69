"""Acks of all connections of this node, coalesced: the ack frames that arrive in one
turn of the event loop go to Redis in one pipelined round trip (one ``ack_many.lua``
call per partition) instead of one round trip, and one pooled connection, per frame."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from delivery.edge_calls import AckCode
from delivery.store import AckRequest, Store

MAX_BATCH = 500


class AckBatcher:
    def __init__(self, store: Store, *, max_batch: int = MAX_BATCH) -> None:
        self.store = store
        self.max_batch = max_batch
        self.pending: list[tuple[AckRequest, asyncio.Future[dict[str, AckCode]]]] = []
        self.scheduled = False
        self.flushes: set[asyncio.Task[None]] = set()

    async def ack(
        self, *, user_id: str, conn_id: str, node_id: str, message_ids: Sequence[str]
    ) -> dict[str, AckCode]:
        """Same answer as :meth:`Store.ack`, shared with the acks of this loop turn."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[dict[str, AckCode]] = loop.create_future()
        self.pending.append((AckRequest(user_id, conn_id, node_id, message_ids), fut))
        if not self.scheduled:
            self.scheduled = True
            loop.call_soon(self._kick)
        return await fut

    def _kick(self) -> None:
        self.scheduled = False
        while self.pending:
            batch, self.pending = self.pending[: self.max_batch], self.pending[self.max_batch :]
            task = asyncio.create_task(self._flush(batch))
            self.flushes.add(task)
            task.add_done_callback(self.flushes.discard)

    async def _flush(
        self, batch: list[tuple[AckRequest, asyncio.Future[dict[str, AckCode]]]]
    ) -> None:
        try:
            results = await self.store.ack_many([req for req, _ in batch])
        except BaseException as e:  # each waiting frame sees the error, as before
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(e if isinstance(e, Exception) else RuntimeError(str(e)))
            if not isinstance(e, Exception):
                raise
            return
        for (_, fut), codes in zip(batch, results, strict=True):
            if not fut.done():
                fut.set_result(codes)
