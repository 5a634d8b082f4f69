"""The reader's plan for one socket read (api.inbound.plan): ASGI receive events in,
the ordered actions that serve them out. No socket, no Redis: what the endpoint does
with the actions is tested end to end in test_ws_delivery.py and test_ws_wire.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from api import protocol
from api.connection import TokenBucket
from api.inbound import Ack, Close, Closed, Plan, Refuse, Serve, frame_text, plan
from api.protocol import MAX_ACK_IDS, CloseCode, ErrorCode

MAX = 1024


def text(frame: Any) -> dict[str, Any]:
    return {"type": "websocket.receive", "text": orjson.dumps(frame).decode()}


def ack(*ids: str) -> dict[str, Any]:
    return text({"type": "ack", "id": ids[0]} if len(ids) == 1 else {"type": "ack", "ids": ids})


def ping(ts: int = 1) -> dict[str, Any]:
    return text({"type": "ping", "ts": ts})


def bye(code: int | None = None) -> dict[str, Any]:
    return {"type": "websocket.disconnect"} | ({} if code is None else {"code": code})


def unlimited() -> bool:
    return True


def run(
    *events: dict[str, Any], take: Callable[[], bool] = unlimited, max_bytes: int = MAX, **kw: Any
) -> Plan:
    return plan(events, max_bytes=max_bytes, take=take, **kw)


def test_consecutive_acks_are_one_ack_in_frame_order() -> None:
    got = run(ack("a"), ack("b", "c"), ack("d"))
    assert got.actions == [Ack(["a", "b", "c", "d"])]
    assert got.seen and not got.closed


def test_any_other_frame_sends_the_gathered_acks_first() -> None:
    got = run(ack("a"), ack("b"), ping(7), ack("c"), text({"type": "subscribe", "topic": "t"}))
    assert got.actions == [
        Ack(["a", "b"]),
        Serve({"type": "ping", "ts": 7}),
        Ack(["c"]),
        Serve({"type": "subscribe", "topic": "t"}),
    ]


def test_a_frame_of_an_unknown_type_is_served_and_refused_by_its_handler() -> None:
    assert run(text({"type": "bogus"})).actions == [Serve({"type": "bogus"})]


def test_a_refused_frame_is_answered_in_its_place() -> None:
    got = run(
        ack("a"),
        {"type": "websocket.receive", "text": "not json"},
        ack("b"),
        text({"type": "ack", "ids": []}),
        text(["no", "type"]),
    )
    assert got.actions == [
        Ack(["a"]),
        Refuse(protocol.error(ErrorCode.INVALID_JSON, "frame is not valid JSON")),
        Ack(["b"]),
        Refuse(
            protocol.error(
                ErrorCode.INVALID_FRAME, f"'ids' must be a list of 1 to {MAX_ACK_IDS} ids"
            )
        ),
        Refuse(protocol.error(ErrorCode.INVALID_FRAME, "a frame is a JSON object with a 'type'")),
    ]
    refused = orjson.loads(got.actions[1].frame)  # type: ignore[union-attr]
    assert refused == {"type": "error", "code": "invalid_json", "detail": "frame is not valid JSON"}


def test_one_ack_holds_at_most_max_ack_ids() -> None:
    first = [f"m{i}" for i in range(600)]
    fits = [f"n{i}" for i in range(MAX_ACK_IDS - 600)]
    big = 65536
    assert run(ack(*first), ack(*fits), max_bytes=big).actions == [Ack(first + fits)]
    over = [*fits, "one-more"]
    assert run(ack(*first), ack(*over), max_bytes=big).actions == [Ack(first), Ack(over)]


def test_a_frame_too_big_closes_and_nothing_after_it_is_served() -> None:
    big = {"type": "websocket.receive", "text": "x" * (MAX + 1)}
    got = run(ack("a"), big, ping(), ack("b"))
    assert got.actions == [Close(CloseCode.TOO_BIG), Ack(["a"])]  # acks before it still count
    assert got.seen and not got.closed


def test_binary_frames_count_by_their_bytes_and_are_read_as_utf8() -> None:
    raw = orjson.dumps({"type": "ping", "ts": 2})
    assert run({"type": "websocket.receive", "bytes": raw}).actions == [
        Serve({"type": "ping", "ts": 2})
    ]
    too_big = run({"type": "websocket.receive", "bytes": b"x" * (MAX + 1)})
    assert too_big.actions == [Close(CloseCode.TOO_BIG)] and not too_big.seen
    assert frame_text({"type": "websocket.receive", "bytes": b"\xff{}"}, MAX) == "\ufffd{}"
    assert frame_text({"type": "websocket.receive", "text": "x" * MAX}, MAX) == "x" * MAX
    assert frame_text({"type": "websocket.receive", "text": "x" * (MAX + 1)}, MAX) is None


def test_frames_over_the_rate_limit_close_with_4429() -> None:
    bucket = TokenBucket(0, 2)  # two frames, never refilled
    got = run(ack("a"), ack("b"), ack("c"), ping(), take=bucket.take)
    assert got.actions == [Close(CloseCode.RATE_LIMITED), Ack(["a", "b"])]
    assert run(ping(), take=bucket.take).actions == [Close(CloseCode.RATE_LIMITED)]


def test_the_clients_close_ends_the_plan_after_the_gathered_acks() -> None:
    got = run(ack("a"), bye(4000), ping())
    assert got.actions == [Ack(["a"]), Closed(4000)]
    assert got.closed
    assert run(bye()).actions == [Closed(CloseCode.NORMAL)]
    assert not run(bye()).seen


def test_a_closing_connection_serves_nothing_but_hears_the_close() -> None:
    assert run(ack("a"), ping(), closing=True) == Plan([], seen=False, closed=False)
    assert run(ping(), bye(1000), closing=True).actions == [Closed(1000)]
    bucket = TokenBucket(0, 1)
    run(ping(), ping(), closing=True, take=bucket.take)
    assert bucket.take()  # frames not served take no token


def test_an_empty_read_plans_nothing() -> None:
    assert run() == Plan()
