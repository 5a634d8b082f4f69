"""A connection's state: the table of legal transitions and the two methods that move
along it (request_close, closed). No socket: the socket side is test_ws_wire.py."""

from __future__ import annotations

import itertools

import pytest

from api.connection import TRANSITIONS, Connection, State, TokenBucket, check_transition
from api.protocol import CloseCode
from api.wire import Wire
from delivery.exceptions import IllegalTransition
from tests.conftest import FrozenClock

LEGAL = {
    (State.OPEN, State.CLOSING),
    (State.OPEN, State.CLOSED),
    (State.CLOSING, State.CLOSED),
}


@pytest.mark.parametrize(("old", "new"), list(itertools.product(State, State)))
def test_only_the_tables_transitions_are_allowed(old: State, new: State) -> None:
    if (old, new) in LEGAL:
        check_transition(old, new)
    else:
        with pytest.raises(IllegalTransition, match=f"{old.value} -> {new.value}"):
            check_transition(old, new)


def test_closed_is_final_and_every_state_is_in_the_table() -> None:
    assert set(TRANSITIONS) == set(State)
    assert TRANSITIONS[State.CLOSED] == frozenset()


def connection() -> Connection:
    wire = Wire.__new__(Wire)  # a Wire with no socket behind it: nothing here writes
    wire.task, wire.cut = None, False
    return Connection(
        wire,
        conn_id="c1",
        user_id="u1",
        role="user",  # type: ignore[arg-type]
        node_id="n1",
        queue_size=2,
        bucket=TokenBucket(1, 1),
    )


def test_the_state_is_not_assigned_from_outside() -> None:
    conn = connection()
    with pytest.raises(AttributeError):
        conn.state = State.CLOSED  # type: ignore[misc]
    assert conn.state is State.OPEN and conn.is_open


async def test_request_close_moves_to_closing_and_the_first_close_wins() -> None:
    conn = connection()
    conn.request_close(CloseCode.HEARTBEAT_MISSED)
    assert conn.state is State.CLOSING and not conn.is_open
    assert (conn.close_code, conn.close_reason) == (4408, "heartbeat missed")
    conn.request_close(CloseCode.RATE_LIMITED, "later")  # changes nothing
    assert (conn.close_code, conn.close_reason) == (4408, "heartbeat missed")
    assert not conn.offer("{}")  # a closing connection queues nothing more
    conn.closed(4000)  # the client's close after ours keeps our code
    assert conn.state is State.CLOSED and conn.close_code == 4408
    conn.finished()
    assert conn.state is State.CLOSED


async def test_a_close_reason_is_the_codes_own_unless_given() -> None:
    conn = connection()
    conn.request_close(CloseCode.FORBIDDEN, "origin not allowed")
    assert conn.close_reason == "origin not allowed"
    other = connection()
    other.request_close(3999)  # a code Courier does not name
    assert (other.close_code, other.close_reason) == (3999, "")
    for c in (conn, other):
        c.finished()


def test_the_clients_close_of_an_open_connection_is_recorded() -> None:
    conn = connection()
    conn.closed(4000)
    assert conn.state is State.CLOSED and conn.close_code == 4000
    conn.closed(CloseCode.ABNORMAL)  # closing a closed connection changes nothing
    assert conn.state is State.CLOSED and conn.close_code == 4000
    conn.request_close(CloseCode.GOING_AWAY)  # too late: nothing to close
    assert conn.state is State.CLOSED and conn.close_code == 4000


async def test_an_outbox_overflow_closes_as_a_slow_reader() -> None:
    conn = connection()
    assert conn.offer("1") and conn.offer("2")
    assert not conn.offer("3")
    assert conn.state is State.CLOSING
    assert (conn.close_code, conn.close_reason) == (1008, CloseCode.SLOW_READER.reason)
    assert conn.outbox == []
    conn.finished()


def test_the_rate_limit_refills_with_the_clock(frozen_clock: FrozenClock) -> None:
    bucket = TokenBucket(2, 2)  # 2 frames a second, bursts of 2
    assert bucket.take() and bucket.take()
    assert not bucket.take()
    frozen_clock.advance(0.4)  # 0.8 of a token
    assert not bucket.take()
    frozen_clock.advance(0.1)
    assert bucket.take()
    frozen_clock.advance(60)  # never more than the burst
    assert [bucket.take() for _ in range(3)] == [True, True, False]


def test_a_connection_remembers_when_it_was_last_heard(frozen_clock: FrozenClock) -> None:
    conn = connection()
    assert conn.last_seen == 1_000.0
    frozen_clock.advance(5)
    conn.seen()
    assert conn.last_seen == 1_005.0
    assert conn.offer("{}", "m1") and conn.unacked == {"m1": 1_005.0}
