"""Leaving well: graceful shutdown (1001, unacked messages handed back at once) and a
slow reader that is cut off without holding up anybody else."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import time

import redis.asyncio as aioredis

from delivery.keys import Keyspace
from tests.api.conftest import EdgeFactory, Node


async def test_graceful_shutdown_closes_1001_and_hands_messages_back_at_once(
    edge: EdgeFactory, keyspace: Keyspace, r: aioredis.Redis
) -> None:
    node = await edge(ack_timeout_seconds=30)
    c, hello = await node.online("quinn")
    mid = await node.send("quinn", {"important": True})
    assert (await c.recv_type("message"))["id"] == mid  # and never acked

    t0 = time.monotonic()
    stopping = asyncio.create_task(node.stop())
    assert await c.closed() == 1001
    await asyncio.wait_for(stopping, 15)
    m = await node_message(r, keyspace, mid)
    assert m["status"] in (b"queued", b"parked"), m  # not 'sent' until the ack timeout
    assert time.monotonic() - t0 < 10
    assert not await r.exists(
        keyspace.key(keyspace.partition_of("quinn"), "conn", conn=hello["connection_id"])
    )
    assert not await r.zcard(keyspace.user("quinn", "conns"))

    # The next node delivers it as soon as the user is back.
    node2 = await edge(ack_timeout_seconds=30)
    back, _ = await node2.online("quinn")
    frame = await back.recv_type("message")
    assert (frame["id"], frame["attempt"]) == (mid, 2)
    await back.ack(mid)
    done = await node2.wait_status(mid, "delivered")
    assert "handed_back" in [e["event"] for e in done["timeline"]]


async def node_message(r: aioredis.Redis, keyspace: Keyspace, mid: str) -> dict[str, bytes]:
    h = await r.hgetall(keyspace.msg(mid))
    return {"status": h[b"s"], **{k.decode(): v for k, v in h.items()}}


async def test_new_connections_are_refused_while_shutting_down(edge: EdgeFactory) -> None:
    node = await edge()
    c, _ = await node.online("rita")
    node.node.accepting = False  # what close_all sets first
    late = await node.connect("rita")
    assert await late.closed() == 1001
    assert c.ws.state.name == "OPEN"


async def raw_slow_client(node: Node, user: str) -> tuple[socket.socket, bytes]:
    """A WebSocket client with a tiny receive buffer that never reads after the handshake."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", node.port))
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET /v1/ws?token={node.token(user)} HTTP/1.1\r\nHost: 127.0.0.1:{node.port}\r\n"
        f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    )
    await loop.sock_sendall(sock, request.encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = await asyncio.wait_for(loop.sock_recv(sock, 1), 5)
        assert chunk, "server closed during the handshake"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock, head


async def test_slow_reader_is_cut_off_and_others_keep_getting_messages(
    edge: EdgeFactory, keyspace: Keyspace, r: aioredis.Redis
) -> None:
    # the fast client acks once per round for as long as the slow one lasts
    node = await edge(send_queue_size=20, max_payload_bytes=65536, rate_limit_per_second=1000)
    sock, _ = await raw_slow_client(node, "slow")
    fast, _ = await node.online("fast")
    deadline = time.monotonic() + 5
    while "slow" not in node.hub.by_user:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    slow_conn = next(iter(node.hub.by_user["slow"]))

    producer = node.rt.producer
    big = "x" * 60_000
    sent_slow = 0
    latencies = []
    t0 = time.monotonic()
    try:
        while slow_conn.conn_id in node.hub.conns:
            assert time.monotonic() - t0 < 20, "the slow reader was never cut off"
            await producer.submit_many(
                [{"user_id": "slow", "payload": {"blob": big}} for _ in range(10)]
            )
            sent_slow += 10
            t1 = time.monotonic()
            mid = (await producer.send("fast", {"ping": sent_slow})).id
            assert (await fast.recv_type("message", timeout=5))["id"] == mid
            latencies.append(time.monotonic() - t1)
            await fast.ack(mid)
        assert slow_conn.close_code == 1008
        assert max(latencies) < 2.0, latencies
        # Presence no longer lists the slow connection.
        ck = keyspace.key(keyspace.partition_of("slow"), "conn", conn=slow_conn.conn_id)
        assert not await r.exists(ck)
        # The fast client still gets messages.
        mid = (await producer.send("fast", {"after": True})).id
        assert (await fast.recv_type("message"))["id"] == mid
        # The socket itself is closed: reading what is buffered ends in EOF.
        loop = asyncio.get_running_loop()
        eof_by = time.monotonic() + 15
        while True:
            assert time.monotonic() < eof_by, "the server never closed the socket"
            try:
                chunk = await asyncio.wait_for(loop.sock_recv(sock, 1 << 16), 5)
            except ConnectionResetError:
                break
            if not chunk:
                break
    finally:
        sock.close()
