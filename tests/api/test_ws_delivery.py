"""Delivery over real sockets: fan-out to every device, acks (single and batched),
refused acks, redelivery after the ack timeout, and bad client frames."""

from __future__ import annotations

import asyncio
import time

import orjson
import redis.asyncio as aioredis

from delivery.keys import Keyspace
from delivery.presence import Conn
from tests.api.conftest import EdgeFactory
from tests.support import neighbour, wait_until


async def test_message_reaches_every_device_and_first_ack_wins(edge: EdgeFactory) -> None:
    node = await edge()
    phone, hello_phone = await node.online("alice", query="device=phone")
    laptop, hello_laptop = await node.online("alice", query="device=laptop")
    mid = await node.send("alice", {"text": "hi"}, priority="high")

    got = [(await phone.recv_type("message")), (await laptop.recv_type("message"))]
    for frame in got:
        assert frame["id"] == mid
        assert frame["payload"] == {"text": "hi"}
        assert frame["priority"] == "high"
        assert frame["attempt"] == 1
        assert frame["created_at"].endswith("Z")
    await laptop.ack(mid)
    m = await node.wait_status(mid, "delivered")
    acked = [e for e in m["timeline"] if e["event"] == "acked"]
    assert len(acked) == 1
    assert acked[0]["conn"] == hello_laptop["connection_id"]
    assert acked[0]["node"] == node.rt.node_id
    sent = next(e for e in m["timeline"] if e["event"] == "sent")
    targets = {t.split("|")[1] for t in sent["to"]}
    assert targets == {hello_phone["connection_id"], hello_laptop["connection_id"]}

    # The phone's late ack changes nothing and is no error (a duplicate).
    await phone.ack(mid)
    await phone.send({"type": "ping", "ts": 1})
    assert (await phone.recv())["type"] == "pong"
    m2 = await node.message(mid)
    assert m2["status"] == "delivered" and m2["timeline"] == m["timeline"]


async def test_batched_acks(edge: EdgeFactory) -> None:
    node = await edge()
    c, _ = await node.online("bob")
    ids = [await node.send("bob", {"n": i}) for i in range(5)]
    frames = await c.messages(5)
    assert sorted(f["id"] for f in frames) == sorted(ids)
    await c.ack(*ids)
    for mid in ids:
        await node.wait_status(mid, "delivered")
    await c.silent(0.2)  # no error frames


async def test_ack_of_unknown_or_foreign_message_is_an_error_and_changes_nothing(
    edge: EdgeFactory, keyspace: Keyspace
) -> None:
    node = await edge()
    near = neighbour(keyspace, "carol")  # same partition: the script itself refuses
    far = next(
        u
        for u in (f"far{i}" for i in range(100))
        if keyspace.partition_of(u) != keyspace.partition_of("carol")
    )
    victim_near, _ = await node.online(near)
    victim_far, _ = await node.online(far)
    mine, _ = await node.online("carol")
    m_near = await node.send(near, {"secret": 1})
    m_far = await node.send(far, {"secret": 2})
    await victim_near.recv_type("message")
    await victim_far.recv_type("message")

    for mid in (m_near, m_far, "0-00000000000000000000", "garbage"):
        await mine.ack(mid)
        err = await mine.recv_type("error")
        assert err["code"] == "unknown_message"
        assert err["id"] == mid
    await mine.send({"type": "ack", "ids": [m_near, "garbage"]})
    codes = {(await mine.recv_type("error"))["id"] for _ in range(2)}
    assert codes == {m_near, "garbage"}
    for mid in (m_near, m_far):
        m = await node.message(mid)
        assert m["status"] == "sent"
        assert not [e for e in m["timeline"] if e["event"] == "acked"]
    # The owners can still ack them.
    await victim_near.ack(m_near)
    await node.wait_status(m_near, "delivered")


async def test_unacked_message_is_sent_again_with_next_attempt(edge: EdgeFactory) -> None:
    node = await edge(ack_timeout_seconds=0.4)
    c, _ = await node.online("dora")
    mid = await node.send("dora", {"x": 1})
    first = await c.recv_type("message")
    assert (first["id"], first["attempt"]) == (mid, 1)
    second = await c.recv_type("message", timeout=5)
    assert (second["id"], second["attempt"]) == (mid, 2)
    assert second["payload"] == first["payload"]
    assert second["created_at"] == first["created_at"]
    await c.ack(mid)
    m = await node.wait_status(mid, "delivered")
    assert m["attempts"] == 2


async def test_presence_keys_describe_each_connection(
    edge: EdgeFactory, keyspace: Keyspace, r: aioredis.Redis
) -> None:
    node = await edge()
    before = int(time.time() * 1000)
    a, hello_a = await node.online("erin", query="device=phone-1")
    b, hello_b = await node.online("erin", user_agent_header="TestAgent/2.0")
    node_id = node.rt.node_id
    conns = await r.zrange(keyspace.user("erin", "conns"), 0, -1)
    assert {c.decode() for c in conns} == {
        f"{node_id}|{hello_a['connection_id']}",
        f"{node_id}|{hello_b['connection_id']}",
    }
    part = keyspace.partition_of("erin")
    h = await r.hgetall(keyspace.key(part, "conn", conn=hello_a["connection_id"]))
    h = {k.decode(): v.decode() for k, v in h.items()}
    assert h["user"] == "erin" and h["node"] == node_id
    assert h["device"] == "phone-1"
    assert h["address"].startswith("127.0.0.1:")
    assert before - 1000 <= int(h["connected_at"]) <= int(h["last_seen"])
    hb = await r.hgetall(keyspace.key(part, "conn", conn=hello_b["connection_id"]))
    assert hb[b"device"] == b"TestAgent/2.0"
    assert 0 < await r.pttl(keyspace.key(part, "conn", conn=hello_a["connection_id"]))
    members = {m.decode() for m in await r.smembers(keyspace.node_conns(node_id))}
    assert members == {f"erin|{hello_a['connection_id']}", f"erin|{hello_b['connection_id']}"}

    # A ping refreshes last_seen.
    await asyncio.sleep(0.02)
    await a.send({"type": "ping"})
    await a.recv_type("pong")
    h2 = await r.hget(keyspace.key(part, "conn", conn=hello_a["connection_id"]), "last_seen")
    assert int(h2) > int(h["last_seen"])

    # Closing removes exactly that connection's entries.
    await a.close()
    ck = keyspace.key(part, "conn", conn=hello_a["connection_id"])
    for _ in range(200):
        if not await r.exists(ck):
            break
        await asyncio.sleep(0.02)
    assert not await r.exists(ck)
    conns = await r.zrange(keyspace.user("erin", "conns"), 0, -1)
    assert [c.decode() for c in conns] == [f"{node_id}|{hello_b['connection_id']}"]
    assert await r.smembers(keyspace.node_conns(node_id)) == {
        f"erin|{hello_b['connection_id']}".encode()
    }
    assert b.ws.state.name == "OPEN"


async def test_silent_connection_is_closed_4408_and_pinging_one_stays(
    edge: EdgeFactory, keyspace: Keyspace, r: aioredis.Redis
) -> None:
    node = await edge(heartbeat_interval_seconds=0.2, heartbeat_timeout_seconds=0.8)
    silent, hello = await node.online("fred")
    chatty, _ = await node.online("gwen")
    assert hello["heartbeat_interval"] == 0.2
    t0 = time.monotonic()

    async def keep_pinging() -> None:
        while True:
            await chatty.send({"type": "ping"})
            await asyncio.sleep(0.2)

    pinger = asyncio.create_task(keep_pinging())
    try:
        assert await silent.closed(timeout=5) == 4408
        assert 0.7 < time.monotonic() - t0 < 4
        assert chatty.ws.state.name == "OPEN"
    finally:
        pinger.cancel()
    part = keyspace.partition_of("fred")
    assert not await r.exists(keyspace.key(part, "conn", conn=hello["connection_id"]))


async def test_ping_answers_pong_with_ts(edge: EdgeFactory) -> None:
    node = await edge()
    c, _ = await node.online("hugo")
    await c.send({"type": "ping", "ts": 1234567})
    assert await c.recv() == {"type": "pong", "ts": 1234567}
    now = int(time.time() * 1000)
    await c.send({"type": "ping"})
    pong = await c.recv()
    assert pong["type"] == "pong" and abs(pong["ts"] - now) < 5000


async def test_bad_frames_get_errors_and_the_connection_stays_open(edge: EdgeFactory) -> None:
    node = await edge()
    c, _ = await node.online("iris")
    cases = [
        ("{not json", "invalid_json"),
        ("[1, 2]", "invalid_frame"),
        ('{"no": "type"}', "invalid_frame"),
        ('{"type": "dance"}', "unknown_type"),
        ('{"type": "ack"}', "invalid_frame"),
        ('{"type": "ack", "id": 5}', "invalid_frame"),
        ('{"type": "ack", "ids": []}', "invalid_frame"),
        ('{"type": "ack", "ids": "0-abc"}', "invalid_frame"),
        ('{"type": "subscribe"}', "invalid_frame"),
    ]
    for text, code in cases:
        await c.send(text)
        err = await c.recv()
        assert err["type"] == "error", (text, err)
        assert err["code"] == code, (text, err)
        assert err["detail"]
    await c.send({"type": "ping", "ts": 1})
    assert await c.recv() == {"type": "pong", "ts": 1}
    mid = await node.send("iris", {"still": "here"})
    assert (await c.recv_type("message"))["id"] == mid


async def test_frame_too_big_closes_1009(edge: EdgeFactory) -> None:
    node = await edge(max_frame_bytes=1024)
    c, _ = await node.online("jack")
    await c.send({"type": "ping", "ts": "x" * 900})
    assert (await c.recv())["type"] == "pong"
    await c.send({"type": "ping", "ts": "x" * 2000})
    assert await c.closed() == 1009


async def test_rate_limit_closes_4429(edge: EdgeFactory) -> None:
    node = await edge(rate_limit_per_second=2, rate_limit_burst=5)
    c, _ = await node.online("kate")
    other, _ = await node.online("kate")
    for i in range(20):
        try:
            await c.send({"type": "ping", "ts": i})
        except Exception:
            break
    pongs = 0
    code = None
    try:
        while True:
            frame = await c.recv()
            assert frame["type"] == "pong"
            pongs += 1
    except Exception as e:
        code = getattr(getattr(e, "rcvd", None), "code", None)
    assert code == 4429
    assert 5 <= pongs <= 7
    await other.send({"type": "ping", "ts": 0})
    assert await other.recv() == {"type": "pong", "ts": 0}


async def test_message_frame_carries_optional_fields(edge: EdgeFactory) -> None:
    node = await edge()
    c, _ = await node.online("liam")
    mid = await node.send(
        "liam", [1, "two", None], collapse_key="score", reply_requested=True, priority="low"
    )
    frame = await c.recv_type("message")
    assert frame["id"] == mid and frame["payload"] == [1, "two", None]
    assert frame["collapse_key"] == "score"
    assert frame["reply_requested"] is True
    assert frame["priority"] == "low"
    assert orjson.loads(orjson.dumps(frame)) == frame


async def test_presence_left_by_a_dead_node_is_swept(
    edge: EdgeFactory, keyspace: Keyspace, r: aioredis.Redis
) -> None:
    node = await edge(heartbeat_interval_seconds=0.2, heartbeat_timeout_seconds=0.6)
    presence = node.rt.presence
    # A node that registered a connection and then died (it never refreshes again).
    await presence.heartbeat_node("ghost")
    await presence.connect(Conn("mona", "ghost-conn", "ghost"), device="old phone")
    live, hello = await node.online("mona")
    part = keyspace.partition_of("mona")

    async def swept() -> bool:
        await live.send({"type": "ping"})  # the live connection keeps its heartbeat
        members = {m.decode() for m in await r.zrange(keyspace.user("mona", "conns"), 0, -1)}
        return (
            not await r.exists(keyspace.node_conns("ghost"))
            and not await r.exists(keyspace.key(part, "conn", conn="ghost-conn"))
            and await r.zscore(keyspace.nodes, "ghost") is None
            and members == {f"{node.rt.node_id}|{hello['connection_id']}"}
        )

    await wait_until(swept, within=5, every=0.1)
    # The live node and its connection stay.
    assert await r.zscore(keyspace.nodes, node.rt.node_id) is not None
    await live.send({"type": "ping", "ts": 5})
    while (await live.recv_type("pong"))["ts"] != 5:  # earlier pongs of the polling above
        pass
    assert live.ws.state.name == "OPEN"


async def test_park_ttl_caps_how_long_a_message_waits(edge: EdgeFactory) -> None:
    node = await edge(park_ttl_seconds=1)
    mid = await node.send("nina", {"old": True})  # its own ttl: the default 7 days
    await node.wait_status(mid, "parked")
    m = await node.wait_status(mid, "expired", within=5)
    assert [e["event"] for e in m["timeline"]][-2:] == ["parked", "expired"]


async def test_connected_is_the_first_frame_even_when_a_message_races_the_connect(
    edge: EdgeFactory,
) -> None:
    """A worker may see the new connection in presence and push to it before the
    edge has greeted it; the greeting still goes out first."""
    node = await edge()
    presence = node.rt.presence
    connect = presence.connect
    raced: list[str] = []

    async def connect_then_race(*args: object, **kw: object) -> object:
        now = await connect(*args, **kw)  # presence written: a worker can push now
        raced.append(await node.send("alice", {"n": 1}))

        async def pushed() -> bool:  # the message reached the connection's outbox
            return any(c.outbox for c in node.hub.by_user.get("alice", ()))

        await wait_until(pushed, within=5, every=0.005)
        return now

    presence.connect = connect_then_race  # type: ignore[method-assign]
    try:
        c = await node.connect("alice")
        first, second = await c.recv(), await c.recv()
    finally:
        presence.connect = connect  # type: ignore[method-assign]
    assert first["type"] == "connected"
    assert (second["type"], second["id"]) == ("message", raced[0])
