"""The WebSocket endpoint: ``/v1/ws`` and ``/v1/ws/{user_id}``.

A connection is accepted, then admitted or refused (a close code of
:class:`~api.protocol.CloseCode`: 1001, 4403, 4401, 1013), registered in the hub and
in presence, greeted with ``connected`` (and ``tasks``), handed its parked messages
under flow control (:mod:`api.drain`), and then serves client frames until it
closes; on close its unacked messages are handed back (see ``disconnect.lua``). See
docs/protocol.md for the frames.

Per connection: the endpoint reads the client's frames (each socket read planned by
:func:`api.inbound.plan`, frames served by :mod:`api.frames`), one writer task writes
what the connection's outbox holds (all of it at once), and a drain task lives while
parked messages are handed out.
"""

from __future__ import annotations

import asyncio
import logging
import secrets

from fastapi import APIRouter, WebSocket
from starlette.routing import Match
from starlette.types import Receive, Scope, Send

from consumers.resilience import transient
from delivery.exceptions import TooManyConnections
from delivery.message import iso_ms
from delivery.metrics import DISCONNECTS
from delivery.presence import Conn

from . import protocol
from .auth import AuthError, Principal, Verifier
from .connection import CLOSE_GRACE, Connection, State, TokenBucket
from .drain import drain
from .frames import FrameError, ack, dispatch
from .inbound import Ack, Action, Close, Closed, Refuse, Serve, plan
from .node import Node
from .protocol import CloseCode, ErrorCode, close_label
from .reader import AckReader, ack_later
from .wire import FastWire, Wire

log = logging.getLogger(__name__)
router = APIRouter()

REDIS_BUSY = "Redis is unavailable or full; try again later"


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
    node: Node = ws.app.state.node
    token, subprotocol = _token(ws)
    await ws.accept(subprotocol=subprotocol)
    who = _admit(ws, node, token, user_id)
    if not isinstance(who, Principal):
        return await _refuse(ws, *who)
    conn = _connection(ws, node, who)
    node.hub.add(conn)
    node.expiries.watch(conn)
    try:
        await _serve(node, conn)
    except asyncio.CancelledError:
        if not conn.wire.cut:  # the server stops, not our own cut-off of a stuck client
            raise
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
    finally:
        conn.finished()
        try:
            await _goodbye(node, conn)  # hand back before close_all() hears "emptied"
        finally:
            node.hub.remove(conn)


def _admit(
    ws: WebSocket, node: Node, token: str | None, user_id: str | None
) -> Principal | tuple[CloseCode, str]:
    """Who connects, or the close code and reason that refuse them."""
    if not node.accepting:
        return CloseCode.GOING_AWAY, CloseCode.GOING_AWAY.reason
    origins = node.rt.settings.origins()
    origin = (ws.headers.get("origin") or "").rstrip("/")
    # Origin protects browsers; clients that are not browsers send none (like Centrifugo).
    if origins is not None and origin and origin not in origins:
        return CloseCode.FORBIDDEN, "origin not allowed"
    verifier: Verifier = ws.app.state.verifier
    try:
        who = verifier.verify(token)
    except AuthError as e:
        return CloseCode.UNAUTHORIZED, e.detail
    if user_id is not None and user_id != who.user_id:
        return CloseCode.FORBIDDEN, "the path user is not the token's subject"
    if node.hub.full:
        return CloseCode.TRY_AGAIN_LATER, CloseCode.TRY_AGAIN_LATER.reason
    return who


def _connection(ws: WebSocket, node: Node, who: Principal) -> Connection:
    settings = node.rt.settings
    client = ws.client
    conn = Connection(
        Wire.of(ws),
        conn_id=secrets.token_hex(8),
        user_id=who.user_id,
        role=who.role,
        node_id=node.rt.node_id,
        queue_size=settings.send_queue_size,
        bucket=TokenBucket(settings.rate_limit_per_second, settings.rate_limit_burst),
        max_chars=settings.send_queue_bytes,
        max_unacked=settings.max_unacked,
        device=(ws.query_params.get("device") or ws.headers.get("user-agent") or "")[:200],
        address=f"{client.host}:{client.port}" if client else "",
        token_exp=who.exp,
    )
    conn.wire.bind(conn.control_frame, max_buffered=settings.send_queue_bytes)
    return conn


async def _serve(node: Node, conn: Connection) -> None:
    rt = node.rt
    try:
        now = await rt.presence.connect(
            Conn(conn.user_id, conn.conn_id, conn.node_id),
            max_per_user=rt.settings.max_connections_per_user,
            device=conn.device,
            address=conn.address,
        )
    except TooManyConnections:
        limit = rt.settings.max_connections_per_user
        log.info("refused %s: user has %d connections", conn.conn_id, limit, extra=conn.log_ids())
        conn.request_close(CloseCode.RATE_LIMITED, f"too many connections of this user ({limit})")
        await _writer(conn)
        return
    except Exception as e:
        if not transient(e):
            raise
        # Redis is full or away: refuse cleanly, the client retries with backoff
        log.warning("refused %s: Redis unavailable (%s)", conn.conn_id, e, extra=conn.log_ids())
        conn.request_close(CloseCode.TRY_AGAIN_LATER, REDIS_BUSY)
        await _writer(conn)
        return
    log.info(
        "connected %s user=%s device=%r",
        conn.conn_id,
        conn.user_id,
        conn.device,
        extra=conn.log_ids(),
    )
    hello = protocol.connected(
        connection_id=conn.conn_id,
        user_id=conn.user_id,
        heartbeat_interval=rt.settings.heartbeat_interval_seconds,
        server_time=iso_ms(now),
    )
    conn.offer(hello, first=True)  # a worker may have pushed a message here meanwhile
    tasks = await rt.producer.active_tasks(conn.user_id)
    if tasks:
        conn.offer(protocol.tasks(tasks))
    writer = asyncio.create_task(_writer(conn))
    reader: AckReader | None = None
    if isinstance(conn.wire, FastWire):  # from now on (after the greeting), see Flusher
        conn.flusher = node.flusher
        reader = AckReader(node, conn, max_bytes=rt.settings.max_frame_bytes)
        conn.wire.take_frames(reader)
    drainer = asyncio.create_task(drain(rt, conn))
    try:
        try:
            await _read(node, conn, reader)
        except Exception:
            log.warning("connection %s failed", conn.conn_id, exc_info=True, extra=conn.log_ids())
            conn.request_close(CloseCode.INTERNAL_ERROR)
        if conn.state is State.CLOSING and not writer.done():
            # Let the outbox and the close frame go out, but never wait long for a
            # client that does not read (the watchdog of request_close drops it).
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
                conn.written()
            elif conn.is_open:
                await conn.frames_ready()
            else:
                conn.closed()
                await wire.close(conn.close_code or CloseCode.NORMAL, conn.close_reason)
                return
    except Exception:  # slow or gone: give up on this socket, nobody else waits
        conn.closed(CloseCode.ABNORMAL)
        wire.abort()


async def _read(node: Node, conn: Connection, reader: AckReader | None = None) -> None:
    """Serve the client's frames until the client's close (after ours, or its own):
    each socket read becomes a plan (:func:`api.inbound.plan`), carried out in order,
    after the acks that the protocol took before them (`reader`, see
    :mod:`api.reader`) have been answered."""
    max_bytes = node.rt.settings.max_frame_bytes
    receive_many = conn.wire.receive_many
    take = conn.bucket.take
    while True:
        events = await receive_many()
        if reader is not None and reader.in_flight:
            await reader.settled()
        batch = plan(events, max_bytes=max_bytes, take=take, closing=not conn.is_open)
        if batch.seen:
            conn.seen()
        for action in batch.actions:
            await _carry_out(node, conn, action)
        if batch.closed:
            return


async def _carry_out(node: Node, conn: Connection, action: Action) -> None:
    """One action of a plan. Acks always go to Redis (the client got those messages);
    a frame is served only while the connection is open (an earlier action may have
    closed it)."""
    match action:
        case Ack(ids):
            try:
                await ack(node, conn, ids)
            except Exception as e:
                if not transient(e):
                    raise
                node.spawn(ack_later(node, conn, ids))  # the client acked: it counts
        case Serve(frame):
            if conn.is_open:
                try:
                    await dispatch(node, conn, frame)
                except FrameError as e:
                    conn.offer(e.frame())
                except Exception as e:
                    if not transient(e):
                        raise
                    conn.offer(protocol.error(ErrorCode.UNAVAILABLE, REDIS_BUSY))
        case Refuse(frame):
            conn.offer(frame)
        case Close(code):
            conn.request_close(code)
        case Closed(code):
            conn.closed(code)


async def _refuse(ws: WebSocket, code: CloseCode, reason: str) -> None:
    DISCONNECTS.labels(close_label(code)).inc()
    log.info("refused connection: %s (%d)", reason, code)
    await ws.close(code, reason)


async def _goodbye(node: Node, conn: Connection) -> None:
    code = conn.close_code or CloseCode.NORMAL
    DISCONNECTS.labels(close_label(code)).inc()
    try:
        n = await node.rt.presence.disconnect(
            Conn(conn.user_id, conn.conn_id, conn.node_id),
            unacked=list(conn.unacked),
            reason=f"closed {code}",
        )
    except Exception:
        log.warning(
            "presence cleanup failed for %s; it will expire",
            conn.conn_id,
            exc_info=True,
            extra=conn.log_ids(),
        )
        return
    log.info(
        "disconnected %s user=%s code=%s handed_back=%d",
        conn.conn_id,
        conn.user_id,
        code,
        n,
        extra=conn.log_ids(),
    )
