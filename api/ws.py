"""The WebSocket edge: ``/v1/ws`` and ``/v1/ws/{user_id}``.

A connection is accepted, authenticated (close 4401/4403 on refusal), registered in
presence, greeted with ``connected``, handed its parked messages under flow control,
and then serves client frames until it closes; on close its unacked messages are
handed back (see ``disconnect.lua``). See docs/protocol.md for the frames.

Per connection: the endpoint reads the client's frames, one writer task writes what
the connection's outbox holds (all of it at once), and a drain task lives while
parked messages are handed out.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any

import orjson
from fastapi import APIRouter, WebSocket
from starlette.routing import Match
from starlette.types import Receive, Scope, Send

from consumers.resilience import retrying
from delivery.message import MAX_ID_LEN, iso_ms
from delivery.metrics import DISCONNECTS
from delivery.presence import Conn
from delivery.store import Push

from .auth import AuthError, Verifier
from .connection import CLOSE_GRACE, Connection, State, TokenBucket
from .frames import MAX_ACK_IDS, FrameError, ack, ack_ids, dispatch, parse
from .hub import Hub
from .wire import Wire

log = logging.getLogger(__name__)
router = APIRouter()


def _token(ws: WebSocket) -> tuple[str | None, str | None]:
    """(token, subprotocol to select) from the query, the header or the subprotocols."""
    protos = ws.scope.get("subprotocols") or []
    if len(protos) >= 2 and protos[0].lower() == "bearer":
        return protos[1], protos[0]
    if ws.query_params.get("token"):
        return ws.query_params["token"], None
    auth = ws.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip(), None
    return None, None


def error_frame(code: str, detail: str, **extra: Any) -> str:
    return orjson.dumps({"type": "error", "code": code, "detail": detail, **extra}).decode()


async def serve(scope: Scope, receive: Receive, send: Send) -> bool:
    """Serve a WebSocket scope if it is one of the edge's routes; False otherwise.

    The app calls this before its middleware stack (which is for HTTP): a connection
    then holds none of the middleware's frames and exit stacks for its lifetime, and
    its frames pass through no middleware wrappers."""
    for route in router.routes:
        match, child = route.matches(scope)
        if match is Match.FULL:
            scope.update(child)
            await websocket_endpoint(WebSocket(scope, receive, send), **child["path_params"])
            return True
    return False


@router.websocket("/v1/ws")
@router.websocket("/v1/ws/{user_id}")
async def websocket_endpoint(ws: WebSocket, user_id: str | None = None) -> None:
    hub: Hub = ws.app.state.hub
    verifier: Verifier = ws.app.state.verifier
    settings = hub.rt.settings
    token, subprotocol = _token(ws)
    await ws.accept(subprotocol=subprotocol)
    if not hub.accepting:
        return await _refuse(ws, 1001, "server shutting down")
    origins = settings.origins()
    origin = (ws.headers.get("origin") or "").rstrip("/")
    # Origin protects browsers; clients that are not browsers send none (like Centrifugo).
    if origins is not None and origin and origin not in origins:
        return await _refuse(ws, 4403, "origin not allowed")
    try:
        who = verifier.verify(token)
    except AuthError as e:
        return await _refuse(ws, 4401, e.detail)
    if user_id is not None and user_id != who.user_id:
        return await _refuse(ws, 4403, "the path user is not the token's subject")
    if len(who.user_id) > MAX_ID_LEN:
        return await _refuse(ws, 4403, "user id too long")
    if hub.full:
        return await _refuse(ws, 1013, "server full, try again later")

    client = ws.client
    conn = Connection(
        Wire.of(ws),
        conn_id=secrets.token_hex(8),
        user_id=who.user_id,
        role=who.role,
        node_id=hub.rt.node_id,
        queue_size=settings.send_queue_size,
        bucket=TokenBucket(settings.rate_limit_per_second, settings.rate_limit_burst),
        device=(ws.query_params.get("device") or ws.headers.get("user-agent") or "")[:200],
        address=f"{client.host}:{client.port}" if client else "",
    )
    hub.add(conn)
    try:
        await _serve(hub, conn)
    except asyncio.CancelledError:
        if not conn.wire.cut:  # the server stops, not our own cut-off of a stuck client
            raise
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
    finally:
        conn.finished()
        try:
            await _goodbye(hub, conn)  # hand back before close_all() hears "emptied"
        finally:
            hub.remove(conn)


async def _serve(hub: Hub, conn: Connection) -> None:
    rt = hub.rt
    now = await rt.presence.connect(
        Conn(conn.user_id, conn.conn_id, conn.node_id),
        device=conn.device,
        address=conn.address,
    )
    log.info(
        "connected %s user=%s device=%r", conn.conn_id, conn.user_id, conn.device, extra=_ids(conn)
    )
    conn.offer(
        orjson.dumps(
            {
                "type": "connected",
                "connection_id": conn.conn_id,
                "user_id": conn.user_id,
                "heartbeat_interval": rt.settings.heartbeat_interval_seconds,
                "server_time": iso_ms(now),
            }
        ).decode(),
        first=True,  # a worker may have pushed a message here while connect ran
    )
    tasks = await rt.producer.active_tasks(conn.user_id)
    if tasks:
        conn.offer(orjson.dumps({"type": "tasks", "tasks": tasks}).decode())
    writer = asyncio.create_task(_writer(conn))
    drainer = asyncio.create_task(drain(hub, conn))
    try:
        try:
            await _read(hub, conn)
        except Exception:
            log.warning("connection %s failed", conn.conn_id, exc_info=True, extra=_ids(conn))
            conn.request_close(1011, "internal error")
        if conn.state is not State.CLOSED and not writer.done():
            # Let the outbox and the close frame go out, but never wait long for a
            # client that does not read (the watchdog of request_close drops it).
            conn.request_close(conn.close_code or 1000, conn.close_reason)
            await asyncio.wait({writer}, timeout=CLOSE_GRACE)
    finally:
        writer.cancel()
        drainer.cancel()
        await asyncio.gather(writer, drainer, return_exceptions=True)


async def _writer(conn: Connection) -> None:
    """Write what the outbox holds, all of it at once; then close when asked to."""
    wire = conn.wire
    try:
        while True:
            if conn.outbox:
                await wire.send(conn.take_outbox())
            elif conn.state is State.OPEN:
                await conn.frames_ready()
            else:
                conn.state = State.CLOSED
                await wire.close(conn.close_code or 1000, conn.close_reason)
                return
    except Exception:  # slow or gone: give up on this socket, nobody else waits
        conn.state = State.CLOSED
        conn.close_code = conn.close_code or 1006
        wire.abort()


async def _read(hub: Hub, conn: Connection) -> None:
    """Serve the client's frames until the connection is closed (by either side).

    Takes every frame the socket delivered at once (see Wire.receive_many), and
    consecutive ``ack`` frames among them as one ack (up to MAX_ACK_IDS ids): one
    Redis request and one wake-up instead of one per frame. Any other frame, an error
    or the end of the batch sends the gathered ids first, so answers keep their order."""
    max_bytes = hub.rt.settings.max_frame_bytes
    receive_many = conn.wire.receive_many
    acks: list[str] = []  # ids of the batch's ack frames not sent yet
    while True:
        for msg in await receive_many():
            if msg["type"] == "websocket.disconnect":
                if acks:
                    await ack(hub, conn, acks)
                if conn.state is State.OPEN:  # the client closed (else: our own close code)
                    conn.close_code = msg.get("code", 1000)
                conn.state = State.CLOSED
                return
            if conn.state is not State.OPEN:
                continue  # closing: what the client still sends is not served
            text = msg.get("text")
            if text is None:
                raw = msg.get("bytes") or b""
                if len(raw) > max_bytes:
                    conn.request_close(1009, "frame too big")
                    continue
                text = raw.decode("utf-8", "replace")
            if len(text) > max_bytes:
                conn.request_close(1009, "frame too big")
                continue
            conn.seen()
            if not conn.bucket.take():
                conn.request_close(4429, "rate limited")
                continue
            try:
                frame = parse(text)
                ids = ack_ids(frame) if frame["type"] == "ack" else None
            except FrameError as e:
                if acks:
                    await ack(hub, conn, acks)
                    acks = []
                conn.offer(error_frame(e.code, e.detail, **e.extra))
                continue
            if ids is not None and len(acks) + len(ids) <= MAX_ACK_IDS:
                acks += ids
                continue
            if acks:
                await ack(hub, conn, acks)
                acks = []
            if ids is not None:
                acks = list(ids)
                continue
            try:
                await dispatch(hub, conn, frame)
            except FrameError as e:
                conn.offer(error_frame(e.code, e.detail, **e.extra))
        if acks:
            await ack(hub, conn, acks)
            acks = []


async def drain(hub: Hub, conn: Connection) -> None:
    """Hand parked messages to a new connection, at most `drain_window` unacked at once.

    One drain runs per connection: a drain asked for while one runs (presence lost and
    restored, the node's channel resubscribed) only makes the running one look again
    before it ends, so two drains never fill the window twice."""
    if conn.draining:
        conn.drain_more = True
        return
    conn.draining = True
    try:
        await _drain(hub, conn)
    finally:
        conn.draining = False


async def _drain(hub: Hub, conn: Connection) -> None:
    rt = hub.rt
    window = rt.settings.drain_window
    wait = rt.settings.ack_timeout_seconds
    total = 0
    # At most `window` unacked, and never more than half the outbox: live messages must
    # still fit in it, or the connection would be closed as a slow reader.
    share = max(1, conn.queue_size // 2)
    refill = max(1, min(window, share) // 4)  # refill once a quarter is free again
    while conn.state is State.OPEN:
        room = min(window - len(conn.unacked), share - len(conn.outbox))
        if room < refill:
            if not await conn.wait_room(wait):
                await _forget_settled(hub, conn)  # acked by another device, expired ...
            continue
        remaining: int
        pushes: list[Push]
        try:  # Redis outages are waited out; anything else is logged, never silent
            remaining, pushes = await retrying(  # type: ignore[assignment]
                "drain",
                lambda room=room: rt.store.unpark(  # type: ignore[misc]
                    user_id=conn.user_id,
                    node_id=conn.node_id,
                    conn_id=conn.conn_id,
                    limit=room,
                ),
            )  # type: ignore[misc]
        except Exception:
            log.exception(
                "drain of %s failed; the next presence refresh retries it",
                conn.conn_id,
                extra=_ids(conn),
            )
            conn.needs_drain = True
            return
        refused = [p.id for p in pushes if not conn.offer(p.frame().decode(), p.id)]
        if refused:
            # The connection closed (or overflowed) while unpark ran: these are `sent` to
            # it and would wait for the ack timeout; retry them now, no attempt used.
            try:
                await rt.store.nack(refused, reason="unreachable")
            except Exception:  # they are retried after the ack timeout instead
                log.warning("could not hand back %d refused messages", len(refused))
        total += len(pushes) - len(refused)
        if remaining == 0:
            if conn.drain_more:
                conn.drain_more = False
                continue
            if total:
                log.info("drained %d parked messages to %s", total, conn.conn_id, extra=_ids(conn))
            return


async def _forget_settled(hub: Hub, conn: Connection) -> None:
    """Drop from the connection's window the messages no longer waiting for its ack."""
    ids = list(conn.unacked)
    if not ids:
        return
    pipe = hub.rt.redis.pipeline(transaction=False)
    for mid in ids:
        pipe.hget(hub.rt.keyspace.msg(mid), "s")
    for mid, status in zip(ids, await pipe.execute(), strict=True):
        if status != b"sent":
            conn.unacked.pop(mid, None)


async def _refuse(ws: WebSocket, code: int, reason: str) -> None:
    DISCONNECTS.labels(_code_label(code)).inc()
    log.info("refused connection: %s (%d)", reason, code)
    await ws.close(code, reason)


async def _goodbye(hub: Hub, conn: Connection) -> None:
    code = conn.close_code or 1000
    DISCONNECTS.labels(_code_label(code)).inc()
    try:
        n = await hub.rt.presence.disconnect(
            Conn(conn.user_id, conn.conn_id, conn.node_id),
            unacked=list(conn.unacked),
            reason=f"closed {code}",
        )
    except Exception:
        log.warning(
            "presence cleanup failed for %s; it will expire",
            conn.conn_id,
            exc_info=True,
            extra=_ids(conn),
        )
        return
    log.info(
        "disconnected %s user=%s code=%s handed_back=%d",
        conn.conn_id,
        conn.user_id,
        code,
        n,
        extra=_ids(conn),
    )


def _ids(conn: Connection) -> dict[str, str]:
    """Fields JSON logs carry to follow one connection across processes."""
    return {"user_id": conn.user_id, "conn_id": conn.conn_id, "node_id": conn.node_id}


KNOWN_CODES = frozenset({1000, 1001, 1006, 1008, 1009, 1011, 1012, 1013, 4401, 4403, 4408, 4429})


def _code_label(code: int) -> str:
    """Close codes as metric labels: the known ones, everything else "other" (a client
    chooses its own close code, and labels must stay few)."""
    return str(code) if code in KNOWN_CODES else "other"
