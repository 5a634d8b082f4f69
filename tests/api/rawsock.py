"""Raw sockets for tests that play a hostile or broken client: partial requests,
WebSocket handshakes by hand, clients that never read."""

from __future__ import annotations

import socket
import time


def raw(port: int, timeout: float = 5.0) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_all(s: socket.socket, within: float = 5.0) -> bytes:
    """Everything the server sends until it closes (or `within` passes: then what came,
    followed by b'<open>')."""
    s.settimeout(0.1)
    out = b""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            chunk = s.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return out
        if not chunk:
            return out
        out += chunk
    return out + b"<open>"


def handshake(port: int, token: str) -> socket.socket:
    s = raw(port)
    s.sendall(
        b"GET /v1/ws?token=" + token.encode() + b" HTTP/1.1\r\nHost: x\r\n"
        b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return s
