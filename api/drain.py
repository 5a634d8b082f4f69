"""Parked messages handed to a live connection under flow control.

The endpoint drains every new connection once; the node drains one again when its
presence had been lost (messages were parked meanwhile) or its last drain failed
(see :meth:`api.node.Node.drain_again`). Each batch comes from ``unpark.lua``: the
user's parked messages, highest priority first, then oldest first, marked ``sent``
to this connection.
"""

from __future__ import annotations

import logging

from consumers.resilience import retrying
from delivery.fields import MessageField
from delivery.store import Push

from .connection import Connection
from .runtime import Runtime

log = logging.getLogger(__name__)


async def drain(rt: Runtime, conn: Connection) -> None:
    """Hand parked messages to `conn`, at most `drain_window` unacked at once.

    One drain runs per connection: a drain asked for while one runs (presence lost and
    restored, the node's channel resubscribed) only makes the running one look again
    before it ends, so two drains never fill the window twice."""
    if conn.draining:
        conn.drain_more = True
        return
    conn.draining = True
    try:
        await _drain(rt, conn)
    finally:
        conn.draining = False


async def _drain(rt: Runtime, conn: Connection) -> None:
    window = rt.settings.drain_window
    wait = rt.settings.ack_timeout_seconds
    total = 0
    # At most `window` unacked, and never more than half the outbox (in frames and in
    # characters): live messages must still fit in it, or the connection would be
    # closed as a slow reader.
    share = max(1, conn.queue_size // 2)
    share_chars = conn.max_chars // 2
    refill = max(1, min(window, share) // 4)  # refill once a quarter is free again
    frame_size = rt.settings.max_payload_bytes  # until this drain's frames say better
    while conn.is_open:
        room = min(window - len(conn.unacked), share - len(conn.outbox))
        queued = conn.queued_chars
        fits = (
            (share_chars - queued) // max(frame_size, 256)
            if queued
            else max(1, share_chars // max(frame_size, 256))
        )
        if room < refill or fits < 1:
            if not await conn.wait_room(wait):
                await _forget_settled(rt, conn)  # acked by another device, expired ...
            continue
        batch = await _unpark(rt, conn, min(room, fits))
        if batch is None:
            return
        remaining, pushes = batch
        if pushes:
            frame_size = sum(len(p.payload_json) for p in pushes) // len(pushes) + 200
        total += await _offer(rt, conn, pushes)
        if remaining == 0:
            if conn.drain_more:
                conn.drain_more = False
                continue
            if total:
                log.info(
                    "drained %d parked messages to %s", total, conn.conn_id, extra=conn.log_ids()
                )
            return


async def _unpark(rt: Runtime, conn: Connection, room: int) -> tuple[int, list[Push]] | None:
    """The next batch (messages still parked, pushes); None when it failed for another
    reason than a Redis outage (waited out): the next presence refresh drains again."""
    try:
        batch = await retrying(
            "drain",
            lambda: rt.store.unpark(
                user_id=conn.user_id, node_id=conn.node_id, conn_id=conn.conn_id, limit=room
            ),
        )
        return batch
    except Exception:
        log.exception(
            "drain of %s failed; the next presence refresh retries it",
            conn.conn_id,
            extra=conn.log_ids(),
        )
        conn.needs_drain = True
        return None


async def _offer(rt: Runtime, conn: Connection, pushes: list[Push]) -> int:
    """Queue the pushes on the connection; how many it took."""
    refused = [p for p in pushes if not conn.offer(p.frame().decode(), p.id, soft=True)]
    if refused:
        # The connection closed (or its outbox filled up) while unpark ran: these are
        # `sent` to it and would wait for the ack timeout; retry them now, no attempt
        # used (they come back through dispatch or the next drain).
        try:
            await rt.store.nack(refused, reason="unreachable")
        except Exception:  # they are retried after the ack timeout instead
            log.warning("could not hand back %d refused messages", len(refused))
    return len(pushes) - len(refused)


async def _forget_settled(rt: Runtime, conn: Connection) -> None:
    """Drop from the connection's window the messages no longer waiting for its ack."""
    ids = list(conn.unacked)
    if not ids:
        return
    pipe = rt.redis.pipeline(transaction=False)
    for mid in ids:
        pipe.hget(rt.keyspace.msg(mid), MessageField.STATUS)
    for mid, status in zip(ids, await pipe.execute(), strict=True):
        if status != b"sent":
            conn.unacked.pop(mid, None)
