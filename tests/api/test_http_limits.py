"""What an unauthenticated peer may cost an edge (api/http_limits.py, api/wire.py):
a huge header is cut off after MAX_HEADER_BYTES with a JSON 431 and costs the process
no memory and its other clients no latency; slow or silent connections are closed
after HEADER_TIMEOUT_SECONDS; too many unfinished heads are refused with 503; an
upgrade whose header line websockets refuses gets a 431 instead of silence."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable

import orjson
import pytest
from websockets.asyncio.client import connect

from api.auth import issue
from delivery.settings import Settings
from tests.api.conftest import Client, EdgeFactory
from tests.api.rawsock import handshake, raw, read_all
from tests.processes import SECRET, ServeProc

MB = 1024 * 1024


def status_and_error(answer: bytes) -> tuple[int, dict[str, str]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"content-type: application/json" in head.lower(), head
    return status, orjson.loads(body)["error"]


async def test_a_long_head_gets_431_and_the_connection_closes(edge: EdgeFactory) -> None:
    node = await edge(max_header_bytes=4096)
    with raw(node.port) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000)
        answer = await asyncio.to_thread(read_all, s)
    assert not answer.endswith(b"<open>"), answer[:200]
    status, error = status_and_error(answer)
    assert status == 431 and error["code"] == "headers_too_large", error
    # an ordinary request still passes
    assert (await node.http.get("/healthz")).status_code == 200


async def test_too_many_headers_get_431(edge: EdgeFactory) -> None:
    node = await edge(max_headers=20)
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(30))
    with raw(node.port) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
        answer = await asyncio.to_thread(read_all, s)
    status, error = status_and_error(answer)
    assert status == 431 and "more than 20 headers" in error["detail"]
    ok = b"".join(b"X-H%d: v\r\n" % i for i in range(10))
    with raw(node.port) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + ok + b"\r\n")
        assert (await asyncio.to_thread(read_all, s)).startswith(b"HTTP/1.1 200")


async def test_slow_and_silent_connections_are_closed_after_the_header_timeout(
    edge: EdgeFactory,
) -> None:
    node = await edge(header_timeout_seconds=1)
    silent = [raw(node.port) for _ in range(5)]
    slow = [raw(node.port) for _ in range(5)]
    for s in slow:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    stop = threading.Event()

    def trickle() -> None:  # slowloris: one more header byte every 0.2 s
        while not stop.wait(0.2):
            for s in slow:
                with contextlib.suppress(OSError):
                    s.sendall(b"X")

    t0 = time.monotonic()
    dripper = threading.Thread(target=trickle)
    dripper.start()
    try:
        answers = await asyncio.gather(
            *(asyncio.to_thread(read_all, s, 6.0) for s in silent + slow)
        )
    finally:
        stop.set()
        dripper.join()
        for s in silent + slow:
            s.close()
    assert time.monotonic() - t0 < 4
    assert all(a == b"" for a in answers[:5]), answers[:5]  # nothing came: just closed
    for a in answers[5:]:
        status, error = status_and_error(a)
        assert status == 408 and error["code"] == "request_timeout"


async def test_unfinished_heads_beyond_the_cap_are_refused_with_503(edge: EdgeFactory) -> None:
    node = await edge(max_pending_handshakes=3, header_timeout_seconds=30)
    held = [raw(node.port) for _ in range(3)]
    for s in held:
        s.sendall(b"GET /healthz HTTP/1.1\r\n")
    await asyncio.sleep(0.2)
    with raw(node.port) as s:
        answer = await asyncio.to_thread(read_all, s)
    head = answer.partition(b"\r\n\r\n")[0].lower()
    status, error = status_and_error(answer)
    assert status == 503 and error["code"] == "too_many_handshakes" and b"retry-after: 1" in head
    for s in held:  # their heads complete: served, and the cap frees up
        s.sendall(b"Host: x\r\nConnection: close\r\n\r\n")
        assert (await asyncio.to_thread(read_all, s)).startswith(b"HTTP/1.1 200")
        s.close()
    assert (await node.http.get("/healthz")).status_code == 200


async def test_an_upgrade_with_a_header_line_over_8_kb_is_answered_431(edge: EdgeFactory) -> None:
    node = await edge()
    token = node.token("alice")
    with raw(node.port) as s:
        s.sendall(
            b"GET /v1/ws?token=" + token.encode() + b" HTTP/1.1\r\nHost: x\r\n"
            b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"X-Long: " + b"b" * 9000 + b"\r\n\r\n"
        )
        answer = await asyncio.to_thread(read_all, s)
    assert not answer.endswith(b"<open>"), "no answer, connection held open"
    status, error = status_and_error(answer)
    assert status == 431 and error["code"] == "headers_too_large", error


# -- a real process under attack ------------------------------------------------------


async def _pinger(c: Client, rtts: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        t0 = time.monotonic()
        await c.send({"type": "ping", "ts": t0})
        await c.recv_type("pong", timeout=30)
        rtts.append(time.monotonic() - t0)
        await asyncio.sleep(0.05)


def _send_huge_header(port: int, size: int, peak: list[int], rss: Callable[[], int]) -> bytes:
    """Send a request head of `size` bytes (as fast as the server takes it) and return
    what the server answered; `peak` gets the server's RSS sampled meanwhile."""
    s = raw(port, timeout=30)
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            peak.append(rss())

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        s.sendall(b"GET /v1/stats HTTP/1.1\r\nHost: x\r\nX-Big: ")
        chunk = b"a" * MB
        try:
            for _ in range(size // MB):
                s.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return read_all(s, 5.0)
    finally:
        done.set()
        sampler.join()
        s.close()


@pytest.mark.slow
async def test_a_96_mb_header_costs_no_memory_and_stalls_nobody(
    proc: ServeProc,
) -> None:
    p = await proc(
        "edge", COURIER_HEARTBEAT_INTERVAL_SECONDS="30", COURIER_HEARTBEAT_TIMEOUT_SECONDS="60"
    )
    token = issue(Settings(jwt_secret=SECRET), "alice")
    c = Client(await connect(f"{p.ws_url}?token={token}", open_timeout=5))
    await c.recv_type("connected")
    rtts: list[float] = []
    stop = asyncio.Event()
    for _ in range(3):  # warm up: the first pings pay for imports and caches
        await c.send({"type": "ping"})
        await c.recv_type("pong")
    before = p.rss()
    pinger = asyncio.create_task(_pinger(c, rtts, stop))
    peak: list[int] = []
    try:
        answer = await asyncio.to_thread(_send_huge_header, p.port, 96 * MB, peak, p.rss)
        await asyncio.sleep(0.3)
    finally:
        stop.set()
        await asyncio.wait_for(pinger, 30)
        await c.close()
    grown = max([*peak, p.rss()]) - before
    assert grown < 8 * MB, f"RSS grew {grown / MB:.1f} MB"
    assert rtts and max(rtts) < 0.5, f"ping->pong up to {max(rtts):.2f} s during the attack"
    if answer:  # the server may reset the connection before the client reads its answer
        assert answer.startswith(b"HTTP/1.1 431"), answer[:100]


# -- WebSocket control frames ---------------------------------------------------------


def _ping_frame(payload: bytes) -> bytes:
    """A masked client ping frame (RFC 6455 5.5.2), mask 0 (the payload as is)."""
    return bytes((0x89, 0x80 | len(payload))) + b"\0\0\0\0" + payload


def _flood_pings(s: socket.socket, seconds: float) -> float | None:
    """Send ping frames and never read; when the server dropped the connection (None:
    it never did within `seconds`)."""
    frames = _ping_frame(b"p" * 125) * 64
    s.settimeout(1.0)
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        try:
            s.sendall(frames)
        except TimeoutError:  # our send buffer is full: the server stopped reading
            continue
        except OSError:
            return time.monotonic() - t0
    return None


async def test_protocol_pings_count_against_the_rate_limit(edge: EdgeFactory) -> None:
    node = await edge(rate_limit_per_second=5, rate_limit_burst=20)
    c = await node.connect("pinger", ping_interval=None)
    await c.recv_type("connected")
    for _ in range(40):
        await c.ws.ping()
    assert await c.closed() == 4429


@pytest.mark.slow
async def test_a_ping_flood_from_a_client_that_never_reads_is_dropped(
    proc: ServeProc,
) -> None:
    # a rate limit this generous lets the pings through: the socket's buffer stops them
    p = await proc(
        "edge",
        COURIER_RATE_LIMIT_PER_SECOND="1000000",
        COURIER_RATE_LIMIT_BURST="1000000",
        COURIER_SEND_QUEUE_BYTES=str(256 * 1024),
    )
    s = handshake(p.port, issue(Settings(jwt_secret=SECRET), "flood"))
    before = p.rss()
    peak: list[int] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            peak.append(p.rss())

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        dropped = await asyncio.to_thread(_flood_pings, s, 8.0)
    finally:
        done.set()
        sampler.join()
        s.close()
    grown = max([*peak, p.rss()]) - before
    assert dropped is not None, f"still connected after 8 s; RSS grew {grown / MB:.1f} MB"
    assert grown < 8 * MB, f"RSS grew {grown / MB:.1f} MB"
