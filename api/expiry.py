"""Token lifetimes of open connections: a connection whose token's ``exp`` passes
without a ``refresh`` is closed with 4401 (``token_expired``).

One heap and one timer for the whole node, not a timer per connection: the heap
holds ``(exp, connection id)``, the timer is armed for the earliest ``exp`` and, when
it fires, closes every connection whose token has expired by then. A refresh pushes
the connection again with its new ``exp``; the old entry is dropped when it comes up
(the connection's ``token_exp`` is later by then). Entries of connections that closed
are dropped the same way, and the heap is rebuilt from the live connections whenever
it holds more than twice as many entries as there are connections (plus a slack), so
a node with much churn keeps it small. Nothing here runs per message or per frame.
"""

from __future__ import annotations

import asyncio
import heapq
import math

from delivery import clock

from .connection import Connection
from .hub import Hub
from .protocol import CloseCode, CloseReason

SLACK = 1024  # entries allowed beyond twice the connections before a rebuild


class Expiries:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._heap: list[tuple[float, str]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._armed_for = math.inf

    def __len__(self) -> int:
        return len(self._heap)

    def watch(self, conn: Connection) -> None:
        """Close ``conn`` at its ``token_exp`` unless that is later by then: call it
        once the hub holds the connection, and again after each refresh."""
        exp = conn.token_exp
        if math.isinf(exp):
            return
        heapq.heappush(self._heap, (exp, conn.conn_id))
        if len(self._heap) > 2 * len(self.hub.conns) + SLACK:
            self._rebuild()
        if exp < self._armed_for:
            self._arm(self._heap[0][0])

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._armed_for = math.inf

    def expire(self) -> int:
        """Close every connection whose token expired by now (this machine's clock: a
        token's ``exp`` is unix time); how many were closed."""
        now = clock.wall()
        heap, conns = self._heap, self.hub.conns
        closed = 0
        while heap and heap[0][0] <= now:
            _, cid = heapq.heappop(heap)
            conn = conns.get(cid)
            if conn is not None and conn.is_open and conn.token_exp <= now:
                conn.request_close(CloseCode.UNAUTHORIZED, CloseReason.TOKEN_EXPIRED)
                closed += 1
        return closed

    def _fire(self) -> None:
        self._timer = None
        self._armed_for = math.inf
        self.expire()
        if self._heap:
            self._arm(self._heap[0][0])

    def _arm(self, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._armed_for = at
        delay = max(0.0, at - clock.wall())
        self._timer = asyncio.get_running_loop().call_later(delay, self._fire)

    def _rebuild(self) -> None:
        self._heap = [
            (c.token_exp, c.conn_id) for c in self.hub.conns.values() if not math.isinf(c.token_exp)
        ]
        heapq.heapify(self._heap)
