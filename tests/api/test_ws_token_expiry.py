"""A token's lifetime on an open connection: closed with 4401 ``token_expired`` when
its ``exp`` passes, unless a ``refresh`` frame brought a fresh token of the same user;
refreshes that are another user's or do not verify change nothing."""

from __future__ import annotations

import asyncio
import time

import jwt
import pytest
from websockets.exceptions import ConnectionClosed

from api.expiry import SLACK, Expiries
from api.hub import Hub
from delivery import clock
from tests.api.conftest import SECRET, Client, EdgeFactory
from tests.api.test_connection_state import connection


def token(user: str, exp: float, secret: str = SECRET) -> str:
    return jwt.encode({"sub": user, "exp": exp}, secret, algorithm="HS256")


async def close_of(c: Client, timeout: float) -> tuple[int | None, str, float]:  # noqa: ASYNC109
    """Read until the server closes: its code, its reason and when (wall clock)."""
    try:
        while True:
            await asyncio.wait_for(c.ws.recv(), timeout)
    except ConnectionClosed as e:
        at = time.time()
        return (e.rcvd.code, e.rcvd.reason, at) if e.rcvd else (None, "", at)


async def test_a_connection_is_closed_when_its_token_expires(edge: EdgeFactory) -> None:
    node = await edge()
    exp = int(time.time()) + 2
    c, _ = await node.online("tess", token=token("tess", exp))
    mid = await node.send("tess", {"n": 1})
    assert (await c.recv_type("message"))["id"] == mid  # not acked: handed back
    code, reason, at = await close_of(c, timeout=5)
    assert (code, reason) == (4401, "token_expired")
    assert exp - 0.05 <= at <= exp + 1.0, at - exp
    m = await node.wait_status(mid, "parked")
    assert any(e.get("reason") == "closed 4401" for e in m["timeline"]), m["timeline"]
    assert not node.hub.conns and len(node.node.expiries) == 0


async def test_a_refreshed_connection_lives_past_the_first_tokens_exp(edge: EdgeFactory) -> None:
    node = await edge()
    started = time.time()
    first = int(started) + 2
    c, _ = await node.online("ravi", token=token("ravi", first))
    fresh = int(started) + 60
    await c.send({"type": "refresh", "token": token("ravi", fresh)})
    assert await c.recv() == {"type": "refreshed", "exp": fresh}
    await asyncio.sleep(max(0.0, started + 5 - time.time()))  # 3 s past the first exp
    await c.send({"type": "ping", "ts": 1})
    assert await c.recv() == {"type": "pong", "ts": 1}
    mid = await node.send("ravi", {"late": True})
    assert (await c.recv_type("message"))["payload"] == {"late": True}
    await c.ack(mid)
    await node.wait_status(mid, "delivered")
    (conn,) = node.hub.by_user["ravi"]
    assert conn.is_open and conn.token_exp == fresh


async def test_a_refresh_for_another_user_is_refused_and_the_old_exp_kept(
    edge: EdgeFactory,
) -> None:
    node = await edge()
    exp = int(time.time()) + 3
    c, _ = await node.online("uma", token=token("uma", exp))
    await c.send({"type": "refresh", "token": token("mallory", exp + 3600)})
    err = await c.recv()
    assert err["type"] == "error" and err["code"] == "refresh_wrong_subject"
    assert err["exp"] == exp
    other = await node.send("mallory", {"for": "mallory"})
    own = await node.send("uma", {"for": "uma"})
    got = await c.recv_type("message")
    assert (got["id"], got["payload"]) == (own, {"for": "uma"})  # still uma, only uma
    await c.ack(own)
    code, reason, at = await close_of(c, timeout=6)
    assert (code, reason) == (4401, "token_expired") and at <= exp + 1.0
    assert (await node.message(other))["status"] == "parked"


async def test_a_refresh_that_does_not_verify_changes_nothing(edge: EdgeFactory) -> None:
    node = await edge()
    exp = int(time.time()) + 3
    c, _ = await node.online("vic", token=token("vic", exp))
    cases = {
        "expired": token("vic", time.time() - 10),
        "wrongly signed": token("vic", exp + 3600, secret="another-secret-0123456789abcdef!"),
        "malformed": "not.a.jwt",
    }
    for why, bad in cases.items():
        await c.send({"type": "refresh", "token": bad})
        err = await c.recv()
        assert err["type"] == "error" and err["code"] == "refresh_refused", why
        assert err["exp"] == exp and "keeps its token" in err["detail"], err
    for bad_frame in ({"type": "refresh"}, {"type": "refresh", "token": 7}):
        await c.send(bad_frame)
        assert (await c.recv())["code"] == "invalid_frame"
    await c.send({"type": "ping", "ts": 2})
    assert await c.recv() == {"type": "pong", "ts": 2}  # the connection stays
    code, reason, at = await close_of(c, timeout=6)
    assert (code, reason) == (4401, "token_expired") and at <= exp + 1.0


async def test_each_connection_closes_at_its_own_exp(edge: EdgeFactory) -> None:
    node = await edge()
    now = int(time.time())
    late, _ = await node.online("wes", token=token("wes", now + 3))
    early, _ = await node.online("wes", token=token("wes", now + 2))
    (e_code, _, e_at), (l_code, _, l_at) = await asyncio.gather(
        close_of(early, 6), close_of(late, 6)
    )
    assert e_code == l_code == 4401
    assert now + 2 - 0.05 <= e_at <= now + 3.0 and now + 3 - 0.05 <= l_at <= now + 4.0


async def test_the_heap_stays_near_the_number_of_connections(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Refreshes and closed connections leave entries behind; the heap is rebuilt
    from the live connections before it grows past twice their number (and a slack)."""
    hub = Hub(max_connections=10)
    monkeypatch.setattr(clock, "wall", lambda: 1000.0)
    expiries = Expiries(hub)
    conn = connection()
    hub.add(conn)
    for i in range(3 * SLACK):
        conn.token_exp = 2000.0 + i  # a refresh each time
        expiries.watch(conn)
        assert len(expiries) <= 2 * len(hub.conns) + SLACK + 1
    assert expiries.expire() == 0 and conn.is_open
    monkeypatch.setattr(clock, "wall", lambda: 2000.0 + 3 * SLACK)
    assert expiries.expire() == 1 and not conn.is_open and len(expiries) == 0
    expiries.stop()
