"""Dead letters over HTTP: the list (reason, last error, pagination across partitions),
replay (a fresh cycle, once), purge one, purge all, and entries whose message expired."""

from __future__ import annotations

import redis.asyncio as aioredis

from delivery.keys import Keyspace
from tests.api.admin_support import QUICK, admin, admin_get, events, kill_message
from tests.api.conftest import EdgeFactory
from tests.support import spread_users


async def test_replay_gives_a_fresh_cycle_once_and_delivers_once(edge: EdgeFactory) -> None:
    node = await edge(**QUICK)
    c, _ = await node.online("alice")
    mid = await kill_message(node, c, "alice", {"text": "important"})

    page = await admin_get(node, "/v1/dead-letters")
    assert page["next_cursor"] is None
    (dl,) = page["dead_letters"]
    assert dl["id"] == mid and dl["user_id"] == "alice"
    assert dl["reason"] == "ack_timeout" and dl["last_error"] == "ack_timeout"
    assert dl["attempts"] == 2 and dl["status"] == "dead" and dl["priority"] == "normal"
    assert dl["dead_at"].endswith("Z") and dl["message_expired"] is False and dl["current"]

    first = await admin(node, "POST", f"/v1/dead-letters/{mid}/replay")
    second = await admin(node, "POST", f"/v1/dead-letters/{mid}/replay")
    assert first.status_code == 202 and first.json() == {"id": mid, "status": "queued"}
    assert second.status_code == 409, second.text
    assert second.json()["error"]["code"] == "conflict"

    frame = await c.recv_type("message")
    assert frame["id"] == mid and frame["attempt"] == 1  # a fresh cycle of attempts
    await c.ack(mid)
    m = await node.wait_status(mid, "delivered")
    await c.silent(0.4)  # the second replay sent nothing
    assert events(m) == [
        "queued",
        "sent",
        "retry",
        "queued",
        "sent",
        "dead",
        "replayed",
        "sent",
        "acked",
    ]
    assert m["timeline"][6]["by"] == "ops" and m["dead_letter_entry"] is None
    assert (await admin_get(node, "/v1/dead-letters"))["dead_letters"] == []
    again = await admin(node, "POST", f"/v1/dead-letters/{mid}/replay")
    assert again.status_code == 409
    unknown = await admin(node, "POST", "/v1/dead-letters/1-00000000000000000000/replay")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"


async def test_list_pages_across_partitions_then_purge_one_and_all(
    edge: EdgeFactory, r: aioredis.Redis, keyspace: Keyspace
) -> None:
    node = await edge(**QUICK)
    users = spread_users(keyspace, per_partition=1, stem="dl")[:3]
    clients = [(await node.online(u))[0] for u in users]
    dead = [await kill_message(node, c, u, {"u": u}) for c, u in zip(clients, users, strict=True)]
    assert len({int(m.split("-")[0]) for m in dead}) == 3  # three partitions

    got: list[dict[str, object]] = []
    cursor = None
    for _ in range(5):
        page = await admin_get(
            node, "/v1/dead-letters", limit=2, **({"cursor": cursor} if cursor else {})
        )
        got += page["dead_letters"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [d["id"] for d in got] == dead[::-1]  # newest first, each once
    assert [d["user_id"] for d in got] == users[::-1]

    one = await admin(node, "DELETE", f"/v1/dead-letters/{dead[0]}")
    assert one.status_code == 200 and one.json() == {"id": dead[0], "purged": 1}
    assert (await admin(node, "DELETE", f"/v1/dead-letters/{dead[0]}")).status_code == 404
    m = await node.message(dead[0])
    assert m["status"] == "dead" and events(m)[-1] == "purged"
    left = await admin_get(node, "/v1/dead-letters")
    assert {d["id"] for d in left["dead_letters"]} == set(dead[1:])

    everything = await admin(node, "DELETE", "/v1/dead-letters")
    assert everything.status_code == 200 and everything.json() == {"purged": 2}
    assert (await admin_get(node, "/v1/dead-letters"))["dead_letters"] == []
    for p in range(keyspace.partitions):
        assert await r.xlen(keyspace.key(p, "dlq")) == 0
    assert (await admin(node, "DELETE", "/v1/dead-letters")).json() == {"purged": 0}
    stats = await admin_get(node, "/v1/stats")
    assert stats["dead_letters"] == 0


async def test_entry_whose_message_expired(
    edge: EdgeFactory, r: aioredis.Redis, keyspace: Keyspace
) -> None:
    node = await edge(**QUICK)
    c, _ = await node.online("frank")
    mid = await kill_message(node, c, "frank", {"n": 1})
    await r.delete(keyspace.msg(mid))  # its retention ended; the DLQ entry stays

    (dl,) = (await admin_get(node, "/v1/dead-letters"))["dead_letters"]
    assert dl["id"] == mid and dl["status"] == "gone" and dl["message_expired"] is True
    assert dl["reason"] == "ack_timeout" and dl["attempts"] == 2 and dl["user_id"] == "frank"
    replay = await admin(node, "POST", f"/v1/dead-letters/{mid}/replay")
    assert replay.status_code == 404
    purge = await admin(node, "DELETE", f"/v1/dead-letters/{mid}")
    assert purge.status_code == 200 and purge.json()["purged"] == 1
    assert (await admin_get(node, "/v1/dead-letters"))["dead_letters"] == []
    assert await r.xlen(keyspace.key(int(mid.split("-")[0]), "dlq")) == 0


async def test_purging_a_message_that_is_not_dead_is_a_conflict(edge: EdgeFactory) -> None:
    node = await edge()
    mid = await node.send("gina", {"n": 1})
    await node.wait_status(mid, "parked")
    resp = await admin(node, "DELETE", f"/v1/dead-letters/{mid}")
    assert resp.status_code == 409 and resp.json()["error"]["code"] == "conflict"
    bad = await admin(node, "GET", "/v1/dead-letters", params={"cursor": "x"})
    assert bad.status_code == 422
    assert (await node.message(mid))["status"] == "parked"


async def test_pages_of_one_partition_and_of_entries_without_a_message(
    edge: EdgeFactory, r: aioredis.Redis, keyspace: Keyspace
) -> None:
    node = await edge()
    dlq = keyspace.key(2, "dlq")
    ids = [f"2-{i:020x}" for i in range(5)]
    for mid in ids:  # entries whose message hashes are long gone
        await r.xadd(dlq, {"id": mid, "u": "old", "reason": "poison", "attempts": 3})
    seen: list[str] = []
    cursor = None
    for _ in range(5):
        page = await admin_get(
            node, "/v1/dead-letters", limit=2, **({"cursor": cursor} if cursor else {})
        )
        assert len(page["dead_letters"]) <= 2
        seen += [d["id"] for d in page["dead_letters"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]
    d = (await admin_get(node, "/v1/dead-letters", limit=1))["dead_letters"][0]
    assert (d["status"], d["reason"], d["attempts"], d["user_id"]) == ("gone", "poison", 3, "old")
    assert d["partition"] == 2 and d["message_expired"] is True and d["current"] is False
    assert (await admin(node, "DELETE", "/v1/dead-letters")).json() == {"purged": 5}
    assert await r.xlen(dlq) == 0
