"""How frames reach the socket: the ``courier.wire`` extension of Courier's uvicorn
protocol (everything queued in one write), the plain ASGI path on any other WebSocket
implementation, and the cut-off of a client that does not take its close frame."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from websockets.frames import Frame, Opcode

from api import wire as wire_module
from api.connection import CLOSE_GRACE, Connection, TokenBucket
from api.wire import EdgeProtocol, FastWire, Inbox, Wire, _header
from delivery.keys import Keyspace
from delivery.store import AckRequest
from tests.api.conftest import EdgeFactory, Node
from tests.api.test_ws_shutdown import raw_slow_client
from tests.support import wait_until

PLAIN = {"ws": "websockets-sansio"}  # uvicorn's own protocol: no courier.wire


async def test_inbox_hands_out_events_in_order_and_wakes_a_waiting_get() -> None:
    inbox = Inbox()
    assert inbox.empty()
    inbox.put_nowait({"n": 1})
    inbox.put_nowait({"n": 2})
    assert [await inbox.get(), await inbox.get()] == [{"n": 1}, {"n": 2}]
    waiting = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    assert not waiting.done()
    inbox.put_nowait({"n": 3})
    assert await asyncio.wait_for(waiting, 1) == {"n": 3}
    assert inbox.empty() and inbox.waiter is None
    inbox.put_nowait({"n": 4})
    inbox.put_nowait({"n": 5})
    assert await inbox.get_all() == [{"n": 4}, {"n": 5}] and inbox.empty()
    waiting_all = asyncio.create_task(inbox.get_all())
    await asyncio.sleep(0)
    assert not waiting_all.done()
    inbox.put_nowait({"n": 6})
    assert await asyncio.wait_for(waiting_all, 1) == [{"n": 6}]


def test_frame_header_is_the_one_websockets_writes() -> None:
    for n in (0, 1, 125, 126, 65535, 65536, 200_000):
        data = b"x" * n
        frame = Frame(Opcode.TEXT, data).serialize(mask=False, extensions=[])
        assert _header(n) + data == frame, n


@pytest.mark.parametrize("compression", [None, "deflate"])
async def test_frames_queued_together_go_out_in_one_write(
    edge: EdgeFactory, monkeypatch: pytest.MonkeyPatch, compression: str | None
) -> None:
    node = await edge()
    c, _ = await node.online("sara", compression=compression)
    conn = next(iter(node.hub.by_user["sara"]))
    assert isinstance(conn.wire, FastWire)
    writes: list[int] = []
    original = EdgeProtocol.write_texts

    def counting(self: EdgeProtocol, frames: Any) -> None:
        writes.append(len(frames))
        original(self, frames)

    monkeypatch.setattr(EdgeProtocol, "write_texts", counting)
    big = "é" * 40_000  # a 64-bit length (80,000 bytes), not ASCII; all five in one chunk
    for n in range(5):
        assert conn.offer(orjson.dumps({"type": "topic", "topic": "t", "data": [n, big]}).decode())
    got = [(await c.recv_type("topic"))["data"] for _ in range(5)]
    assert [g[0] for g in got] == [0, 1, 2, 3, 4] and all(g[1] == big for g in got)
    assert writes == [5]


async def test_one_loop_turn_writes_each_connection_once_without_waking_its_writer(
    edge: EdgeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = await edge()
    clients = [(await node.online(u))[0] for u in ("ada", "bo")]
    conns = [next(iter(node.hub.by_user[u])) for u in ("ada", "bo")]
    for conn in conns:

        async def writer_waits(conn: Connection = conn) -> bool:
            return conn._ready is not None

        await wait_until(writer_waits, within=5, every=0.01)
    writes: list[int] = []
    original = EdgeProtocol.write_texts

    def counting(self: EdgeProtocol, frames: Any) -> None:
        writes.append(len(frames))
        original(self, frames)

    monkeypatch.setattr(EdgeProtocol, "write_texts", counting)
    waiting = [conn._ready for conn in conns]
    for n in range(3):
        for conn in conns:
            assert conn.offer(orjson.dumps({"type": "topic", "topic": "t", "data": n}).decode())
    for c in clients:
        assert [(await c.recv_type("topic"))["data"] for _ in range(3)] == [0, 1, 2]
    assert writes == [3, 3]
    assert all(w is not None and not w.done() for w in waiting)  # no writer woke up


async def test_a_full_socket_leaves_the_frames_to_the_writer_in_their_order(
    edge: EdgeFactory,
) -> None:
    node = await edge()
    c, _ = await node.online("cy")
    conn = next(iter(node.hub.by_user["cy"]))
    assert isinstance(conn.wire, FastWire)
    writable = conn.wire.proto.writable
    writable.clear()  # as uvicorn does when the transport is over its high-water mark
    frame = '{{"type": "topic", "topic": "t", "data": {}}}'.format
    for n in range(3):
        conn.offer(frame(n))
    await asyncio.sleep(0.05)
    assert conn.queued_chars and not conn.outbox  # the writer took them and waits
    for n in range(3, 6):  # the flusher must not write these before the writer's
        conn.offer(frame(n))
    await asyncio.sleep(0.05)
    writable.set()
    assert [(await c.recv_type("topic"))["data"] for _ in range(6)] == list(range(6))


async def test_other_websocket_implementations_get_the_same_protocol(
    edge: EdgeFactory, keyspace: Keyspace, r: aioredis.Redis
) -> None:
    node = await edge(uvicorn=PLAIN, rate_limit_burst=5, rate_limit_per_second=1)
    c, hello = await node.online("tara")
    conn = node.hub.conns[hello["connection_id"]]
    assert type(conn.wire) is Wire
    mid = await node.send("tara", {"hi": 1})
    assert (await c.recv_type("message"))["id"] == mid
    await c.ack(mid)
    await node.wait_status(mid, "delivered")
    for _ in range(6):  # over the burst: the server closes
        await c.send({"type": "ping"})
    assert await c.closed() == 4429
    await _gone(node, r, keyspace, "tara", hello["connection_id"])


@pytest.mark.parametrize("uvicorn", [None, PLAIN], ids=["courier-wire", "plain-asgi"])
async def test_a_client_that_never_takes_its_close_frame_is_dropped(
    edge: EdgeFactory, keyspace: Keyspace, r: aioredis.Redis, uvicorn: dict[str, str] | None
) -> None:
    node = await edge(uvicorn=uvicorn, send_queue_size=10_000, send_queue_bytes=16 << 20)
    sock, _ = await raw_slow_client(node, "uma")
    try:
        deadline = time.monotonic() + 5
        while "uma" not in node.hub.by_user:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        conn = next(iter(node.hub.by_user["uma"]))
        big = '{"type": "topic", "topic": "t", "data": "' + "x" * 60_000 + '"}'
        for _ in range(100):  # far more than the socket buffers hold: the writer waits
            conn.offer(big)
            await asyncio.sleep(0)
        t0 = time.monotonic()
        conn.request_close(4408, "heartbeat missed")
        await _gone(node, r, keyspace, "uma", conn.conn_id, within=CLOSE_GRACE + 3)
        assert time.monotonic() - t0 >= CLOSE_GRACE - 0.5  # it had its chance first
        assert conn.close_code == 4408
        # The node still serves others.
        other, _ = await node.online("vera")
        mid = await node.send("vera", {"ok": True})
        assert (await other.recv_type("message"))["id"] == mid
    finally:
        sock.close()


async def _gone(
    node: Node, r: aioredis.Redis, keyspace: Keyspace, user: str, conn_id: str, within: float = 5
) -> None:
    """Until the node and presence no longer know the connection."""
    key = keyspace.key(keyspace.partition_of(user), "conn", conn=conn_id)
    deadline = time.monotonic() + within
    while conn_id in node.hub.conns or await r.exists(key):
        assert time.monotonic() < deadline, f"{conn_id} still there after {within} s"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("enabled", [True, False])
async def test_compression_is_a_setting(edge: EdgeFactory, enabled: bool) -> None:
    node = await edge(ws_compression=enabled)
    c, _ = await node.online("wim")  # the client offers permessage-deflate
    assert bool(c.ws.protocol.extensions) is enabled
    await node.send("wim", {"text": "hello " * 100})
    assert (await c.recv_type("message"))["payload"] == {"text": "hello " * 100}


async def test_two_drains_waiting_for_room_are_both_woken() -> None:
    conn = Connection(
        Wire.__new__(Wire),
        conn_id="c",
        user_id="u",
        role="user",
        node_id="n",
        queue_size=10,
        bucket=TokenBucket(1, 1),
    )
    first = asyncio.create_task(conn.wait_room(5))
    second = asyncio.create_task(conn.wait_room(5))
    late = asyncio.create_task(conn.wait_room(0.01))  # times out alone
    assert await late is False
    conn.acked_ids([])
    assert await asyncio.wait_for(asyncio.gather(first, second), 1) == [True, True]


async def test_a_long_outbox_is_written_in_capped_chunks_as_the_socket_drains(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """FastWire never hands the transport much more than its buffer limit at once: the
    outbox goes out in chunks of about CHUNK_CHARS, each after the transport is
    writable again."""
    monkeypatch.setattr(wire_module, "CHUNK_CHARS", 1000)

    class Proto:
        def __init__(self) -> None:
            self.writable = asyncio.Event()
            self.writable.set()
            self.writes: list[list[str]] = []

        def write_texts(self, frames: Any) -> None:
            self.writes.append(list(frames))
            self.writable.clear()  # the transport is over its high-water mark

    proto = Proto()
    fast = FastWire.__new__(FastWire)
    fast.proto = proto  # type: ignore[assignment]
    frames = [str(n) * 300 for n in range(10)] + ["x" * 2500]  # the last alone is over
    sending = asyncio.create_task(fast.send(frames))
    await asyncio.sleep(0.01)
    assert len(proto.writes) == 1 and not sending.done()  # waits for the socket
    while not sending.done():
        proto.writable.set()
        await asyncio.sleep(0)
    await sending
    assert [len(w) for w in proto.writes] == [3, 3, 3, 1, 1]
    assert [f for w in proto.writes for f in w] == frames
    assert all(sum(map(len, w)) <= 1000 or len(w) == 1 for w in proto.writes)


async def test_ack_frames_read_together_are_one_ack_and_answers_keep_their_order(
    edge: EdgeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = await edge()
    c, _ = await node.online("xena")
    mids = [await node.send("xena", {"n": n}) for n in range(4)]
    assert [m["id"] for m in await c.messages(4)] == mids
    asked: list[list[str]] = []
    original = node.node.acks.submit

    def recording(request: AckRequest, answer: Any) -> None:
        asked.append(list(request.message_ids))
        original(request, answer)

    monkeypatch.setattr(node.node.acks, "submit", recording)
    frames = [
        {"type": "ack", "id": mids[0]},
        {"type": "ack", "ids": [mids[1], "garbage"]},
        {"type": "nope"},  # the acks before it are answered first
        {"type": "ack", "id": mids[2]},
        {"type": "ack", "id": ""},  # malformed: an error frame, in its place
        {"type": "ack", "id": mids[3]},
    ]
    proto = c.ws.protocol
    for f in frames:  # one socket write: the server reads them together
        proto.send_text(orjson.dumps(f))
    c.ws.transport.write(b"".join(proto.data_to_send()))
    got = [await c.recv_type("error") for _ in range(3)]
    assert [(e["code"], e.get("id")) for e in got] == [
        ("unknown_message", "garbage"),
        ("unknown_type", None),
        ("invalid_frame", None),
    ]
    assert asked == [[mids[0], mids[1], "garbage"], [mids[2]], [mids[3]]]
    for mid in mids:
        await node.wait_status(mid, "delivered")
    assert not next(iter(node.hub.by_user["xena"])).unacked


async def test_an_ack_frame_is_taken_by_the_protocol_without_a_receive_event(
    edge: EdgeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = await edge()
    c, _ = await node.online("yuri")
    conn = next(iter(node.hub.by_user["yuri"]))
    assert isinstance(conn.wire, FastWire)
    inbox: Inbox = conn.wire.proto.queue  # type: ignore[assignment]
    events: list[Any] = []
    original = Inbox.put_nowait

    def recording(self: Inbox, item: Any) -> None:
        if self is inbox:
            events.append(item)
        original(self, item)

    monkeypatch.setattr(Inbox, "put_nowait", recording)
    mids = [await node.send("yuri", {"n": n}) for n in range(3)]
    assert [m["id"] for m in await c.messages(3)] == mids
    await c.send({"type": "ack", "id": mids[0]})
    await c.send({"type": "ack", "ids": mids[1:]})
    for mid in mids:
        await node.wait_status(mid, "delivered")
    assert events == []  # no ASGI event, no wake-up of the endpoint's reader
    assert not conn.unacked
    await c.send({"type": "ack", "id": "nothing-here"})  # answered from the protocol's path
    assert (await c.recv_type("error"))["id"] == "nothing-here"
    await c.send({"type": "ping", "ts": 7})  # any other frame: the usual way
    assert (await c.recv_type("pong"))["ts"] == 7
    assert [e["type"] for e in events] == ["websocket.receive"]
