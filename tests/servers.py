"""uvicorn servers in the test's event loop, on sockets the test binds first.

A port picked by ``free_port()`` and bound later by uvicorn can be taken in between
by any other process of a busy machine; a socket bound here and handed over cannot.
And uvicorn answers a start-up failure with ``sys.exit(3)``: a ``SystemExit`` inside a
task, which asyncio lets out of the event loop and pytest then lets out of the
teardown, skipping the fixtures' finalizers. :func:`serve` turns it into
:class:`StartupFailed`, an ordinary exception naming the cause.
"""

from __future__ import annotations

import asyncio
import socket
import time

import uvicorn


class StartupFailed(RuntimeError):
    """The server gave up during start-up (uvicorn's ``sys.exit(3)``)."""


def listening(port: int = 0, host: str = "127.0.0.1") -> socket.socket:
    """A TCP socket bound to `port` (0: any free one) and listening."""
    sock = socket.socket()
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def port_of(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])


async def _serve(server: uvicorn.Server, sockets: list[socket.socket] | None) -> None:
    try:
        await server.serve(sockets)
    except SystemExit as e:
        cause = e.__context__  # uvicorn exits while handling the real error
        raise StartupFailed(
            f"the server did not start: {cause}" if cause else f"the server exited with {e.code}"
        ) from cause


async def serve(
    server: uvicorn.Server, sock: socket.socket | None, within: float = 10
) -> asyncio.Task[None]:
    """Start `server` on `sock` (None: uvicorn binds its config's host and port) in a
    task of this loop; the task once the server accepts connections. A start-up
    failure raises :class:`StartupFailed` (the socket is closed)."""
    task = asyncio.create_task(_serve(server, None if sock is None else [sock]))
    deadline = time.monotonic() + within
    try:
        while not server.started:
            if task.done():
                task.result()
                raise StartupFailed("the server stopped during start-up")
            if time.monotonic() > deadline:
                raise StartupFailed(f"the server did not start in {within} s")
            await asyncio.sleep(0.01)
    except BaseException:
        if sock is not None:
            sock.close()
        if not task.done():
            server.should_exit = True
            await asyncio.wait_for(asyncio.shield(task), 10)
        raise
    return task
