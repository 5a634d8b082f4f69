"""Acks of all connections of this node, coalesced: the ack frames that arrive in one
turn of the event loop go to Redis in one pipelined round trip (one ``ack_many.lua``
call per partition) instead of one round trip, and one pooled connection, per frame.

:meth:`AckBatcher.submit` takes a request and a callback (the protocol-level reader of
:mod:`api.reader` uses it without a task or a future per frame); :meth:`AckBatcher.ack`
is the same for a coroutine that awaits the answer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from delivery.edge_calls import AckCode
from delivery.store import AckRequest, Store

log = logging.getLogger(__name__)

MAX_BATCH = 500

Codes = dict[str, AckCode]
Answer = Callable[[Codes | Exception], None]
"""Called once with the request's codes, or with the exception that failed its batch."""


def _resolve(fut: asyncio.Future[Codes], result: Codes | Exception) -> None:
    if fut.done():
        return
    if isinstance(result, Exception):
        fut.set_exception(result)
    else:
        fut.set_result(result)


class AckBatcher:
    def __init__(self, store: Store, *, max_batch: int = MAX_BATCH) -> None:
        self.store = store
        self.max_batch = max_batch
        self.pending: list[tuple[AckRequest, Answer]] = []
        self.scheduled = False
        self.flushes: set[asyncio.Task[None]] = set()

    def submit(self, request: AckRequest, answer: Answer) -> None:
        """Queue a request for this loop turn's round trip; ``answer`` gets its codes."""
        self.pending.append((request, answer))
        if not self.scheduled:
            self.scheduled = True
            asyncio.get_running_loop().call_soon(self._kick)

    async def ack(
        self, *, user_id: str, conn_id: str, node_id: str, message_ids: Sequence[str]
    ) -> Codes:
        """Same answer as :meth:`Store.ack`, shared with the acks of this loop turn."""
        fut: asyncio.Future[Codes] = asyncio.get_running_loop().create_future()
        self.submit(AckRequest(user_id, conn_id, node_id, message_ids), lambda r: _resolve(fut, r))
        return await fut

    def _kick(self) -> None:
        self.scheduled = False
        while self.pending:
            batch, self.pending = self.pending[: self.max_batch], self.pending[self.max_batch :]
            task = asyncio.create_task(self._flush(batch))
            self.flushes.add(task)
            task.add_done_callback(self.flushes.discard)

    async def _flush(self, batch: list[tuple[AckRequest, Answer]]) -> None:
        try:
            results: Sequence[Codes | Exception] = await self.store.ack_many(
                [req for req, _ in batch]
            )
        except BaseException as e:  # each waiting frame sees the error, as before
            error = e if isinstance(e, Exception) else RuntimeError(str(e))
            results = [error] * len(batch)
            if not isinstance(e, Exception):
                self._answer(batch, results)
                raise
        self._answer(batch, results)

    @staticmethod
    def _answer(
        batch: list[tuple[AckRequest, Answer]], results: Sequence[Codes | Exception]
    ) -> None:
        for (_, answer), result in zip(batch, results, strict=True):
            try:
                answer(result)
            except Exception:  # one connection's trouble is not the batch's
                log.warning("an ack answer failed", exc_info=True)
