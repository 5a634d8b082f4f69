"""courier_client's pure parts, without a server: backoff, dedupe, tokens, URLs, and
how the client treats message frames (handed over once, duplicates acked again)."""

from __future__ import annotations

import base64
import json

import pytest

from courier_client import Backoff, CourierClient, SeenIds, full_jitter
from courier_client.errors import Forbidden, Unauthorized, refusal
from courier_client.token import refresh_delay, token_exp
from courier_client.urls import with_query, ws_url


def test_full_jitter_spans_zero_to_the_capped_exponential() -> None:
    assert full_jitter(0, base=0.5, cap=20, rand=lambda: 0.0) == 0.0
    assert full_jitter(0, base=0.5, cap=20, rand=lambda: 0.999) == pytest.approx(0.4995)
    assert full_jitter(3, base=0.5, cap=20, rand=lambda: 0.5) == pytest.approx(2.0)
    assert full_jitter(10, base=0.5, cap=20, rand=lambda: 0.5) == pytest.approx(10.0)
    assert full_jitter(10_000, base=0.5, cap=20, rand=lambda: 0.999) < 20  # no overflow


def test_backoff_grows_and_resets_only_after_a_stable_connection() -> None:
    b = Backoff(base=1, cap=8, stable_after=5, rand=lambda: 0.999)
    assert [round(b.next_delay()) for _ in range(5)] == [1, 2, 4, 8, 8]
    b.up(now=100.0)
    b.down(now=101.0)  # up one second: accepted, then dropped: no reset
    assert round(b.next_delay()) == 8
    b.up(now=200.0)
    b.down(now=205.0)  # stayed up: start again from the smallest delay
    assert round(b.next_delay()) == 1 and b.failures == 1
    b.down(now=300.0)  # a failure without a connection changes nothing
    assert b.failures == 1
    with pytest.raises(ValueError):
        Backoff(base=2, cap=1)


def test_backoff_delays_are_random_within_their_bound() -> None:
    b = Backoff(base=0.5, cap=20)
    delays = [b.next_delay() for _ in range(200)]
    for i, d in enumerate(delays):
        assert 0 <= d < min(20, 0.5 * 2**i)
    assert len({round(d, 6) for d in delays}) > 150  # jittered, not a fixed schedule


def test_seen_ids_are_bounded_and_forget_the_oldest() -> None:
    seen = SeenIds(size=3)
    for mid in "abcd":
        seen.add(mid)
    assert len(seen) == 3 and "a" not in seen and all(m in seen for m in "bcd")
    seen.add("b", acked=True)  # touched: now the newest
    seen.add("e")
    assert "c" not in seen and seen.get("b") is True and seen.get("d") is False
    seen.add("b")  # acked stays acked
    assert seen.get("b") is True and seen.get("zz") is None
    with pytest.raises(ValueError):
        SeenIds(size=0)


def jwt_with(claims: object) -> str:
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"eyJhbGciOiJIUzI1NiJ9.{body}.sig"


def test_the_tokens_exp_is_read_without_verifying() -> None:
    assert token_exp(jwt_with({"sub": "a", "exp": 1700000000})) == 1700000000.0
    assert token_exp(jwt_with({"sub": "a", "exp": 17.5})) == 17.5
    for bad in ("", "opaque", "a.b.c", jwt_with({"sub": "a"}), jwt_with({"exp": "soon"})):
        assert token_exp(bad) is None, bad
    assert token_exp(jwt_with({"exp": True})) is None
    assert token_exp(jwt_with([1, 2])) is None


def test_refresh_comes_a_margin_before_exp_but_never_later_than_half_way() -> None:
    assert refresh_delay(3600, 30) == 3570
    assert refresh_delay(40, 30) == 20  # half of what is left
    assert refresh_delay(2, 30) == 1
    assert refresh_delay(0, 30) == 0 and refresh_delay(-5, 30) == 0


def test_urls() -> None:
    assert ws_url("ws://h:1/v1/ws") == "ws://h:1/v1/ws"
    assert ws_url("http://h:1") == "ws://h:1/v1/ws"
    assert ws_url("https://h/") == "wss://h/v1/ws"
    assert ws_url("ws://h/v1/ws", user="a b/c") == "ws://h/v1/ws/a%20b%2Fc"
    assert ws_url("ws://h/v1/ws?x=1", device="phone 1") == "ws://h/v1/ws?x=1&device=phone+1"
    assert with_query("ws://h/v1/ws?token=old&x=1", token="new") == "ws://h/v1/ws?x=1&token=new"
    for bad in ("h:1", "ftp://h/", "ws://"):
        with pytest.raises(ValueError):
            ws_url(bad)


def test_refusals_say_what_to_do() -> None:
    e = refusal(4401, "token expired", fixed_token=True)
    assert isinstance(e, Unauthorized) and e.code == 4401 and "get_token=" in str(e)
    e = refusal(4401, "invalid token", fixed_token=False)
    assert isinstance(e, Unauthorized) and "sign the user in again" in str(e)
    assert isinstance(refusal(4403, "origin not allowed", fixed_token=False), Forbidden)


def test_a_client_needs_one_token_source() -> None:
    with pytest.raises(ValueError):
        CourierClient("ws://h/v1/ws")
    with pytest.raises(ValueError):
        CourierClient("ws://h/v1/ws", token="t", get_token=lambda: "t")
    with pytest.raises(ValueError):
        CourierClient("ws://h/v1/ws", token="t", ack="later")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        CourierClient("ws://h/v1/ws", token="t").on("nope", print)


def frame(mid: str, attempt: int = 1) -> dict[str, object]:
    return {"type": "message", "id": mid, "priority": "normal", "payload": {}, "attempt": attempt}


async def test_a_message_is_handed_over_once_and_a_redelivery_acked_again() -> None:
    client = CourierClient("ws://127.0.0.1:1/v1/ws", token="t", ack="manual", dedupe_size=2)
    dups: list[str] = []
    client.on("duplicate", lambda f: dups.append(f["id"]))
    client._frame(frame("m1"))
    client._frame(frame("m1", 2))  # still queued: the app has not taken it
    assert client._queue.qsize() == 1 and dups == []
    (msg,) = [client._queue.get_nowait()]
    assert msg is not None and msg.id == "m1"
    client._queued.discard("m1")
    client._seen.add("m1")  # what messages() does when it hands it over
    client._frame(frame("m1", 3))  # taken, not acked: the app will ack it
    assert dups == ["m1"] and client._acks.pending == []
    msg.ack()
    client._frame(frame("m1", 4))  # acked before: ack again (the first may be lost)
    assert client._acks.pending == ["m1", "m1"] and client._queue.qsize() == 0
    for mid in ("m2", "m3", "m4"):  # the seen ids are bounded: m1 is forgotten
        client._seen.add(mid)
    assert "m1" not in client._seen and len(client._seen) == 2
    client._acks.cancel()
