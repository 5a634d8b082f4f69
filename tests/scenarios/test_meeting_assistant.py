"""Meeting assistant: a summary goes to every participant (many recipients), on all
their devices, queued for those offline; urgent notices first; a delivery status
per recipient; broadcasts to everyone online; system notifications."""

from __future__ import annotations


async def test_summary_reaches_every_participant_on_every_device(edge) -> None:
    node = await edge()
    svc = {"Authorization": f"Bearer {node.token('meetings', role='service')}"}
    alice_phone, _ = await node.online("alice", query="device=phone")
    alice_laptop, _ = await node.online("alice", query="device=laptop")
    bob, _ = await node.online("bob")

    r = await node.http.post(
        "/v1/messages",
        headers=svc,
        json={
            "recipients": ["alice", "bob", "carol"],
            "payload": {"kind": "summary", "meeting": "standup", "text": "ship on Friday"},
        },
    )
    assert r.status_code == 202, r.text
    by_user = {m["user_id"]: m for m in r.json()["messages"]}
    assert set(by_user) == {"alice", "bob", "carol"}
    assert len({m["id"] for m in by_user.values()}) == 3  # one id per recipient

    (on_phone,) = await alice_phone.messages(1)
    (on_laptop,) = await alice_laptop.messages(1)
    assert on_phone["id"] == on_laptop["id"] == by_user["alice"]["id"]
    await alice_laptop.ack(on_laptop["id"])  # the first device to ack wins
    (for_bob,) = await bob.messages(1)
    await bob.ack(for_bob["id"])

    alice = await node.wait_status(by_user["alice"]["id"], "delivered")
    acked = [e for e in alice["timeline"] if e["event"] == "acked"]
    assert len(acked) == 1 and acked[0]["conn"]
    await node.wait_status(by_user["bob"]["id"], "delivered")
    await node.wait_status(by_user["carol"]["id"], "parked")  # carol is offline

    # carol's phone comes online: the urgent notice first, then the summary
    r = await node.http.post(
        "/v1/messages",
        headers=svc,
        json={
            "user_id": "carol",
            "priority": "high",
            "payload": {"kind": "urgent", "text": "the meeting moved to 3 pm"},
        },
    )
    urgent = r.json()["id"]
    await node.wait_status(urgent, "parked")
    carol, _ = await node.online("carol")
    first, second = await carol.messages(2)
    assert [first["id"], second["id"]] == [urgent, by_user["carol"]["id"]]
    assert first["priority"] == "high"
    await carol.ack(first["id"], second["id"])
    await node.wait_status(by_user["carol"]["id"], "delivered")


async def test_broadcast_to_everyone_online_and_system_notices(edge) -> None:
    node = await edge()
    svc = {"Authorization": f"Bearer {node.token('meetings', role='service')}"}
    clients = [(await node.online(u))[0] for u in ("u1", "u2", "u2", "u3")]
    r = await node.http.post(
        "/v1/broadcast",
        headers=svc,
        json={
            "payload": {"text": "maintenance at 22:00"},
            "system": True,
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["connections"] == 4 and r.json()["nodes"] == 1
    for c in clients:
        frame = await c.recv_type("broadcast")
        assert frame["system"] is True and frame["payload"]["text"] == "maintenance at 22:00"

    r = await node.http.post(
        "/v1/broadcast",
        headers=svc,
        json={
            "payload": {"text": "your room is ready"},
            "users": ["u2"],
        },
    )
    assert r.json()["connections"] == 2  # both of u2's devices, nobody else
    await clients[1].recv_type("broadcast")
    await clients[0].silent(0.2)

    r = await node.http.post(
        "/v1/broadcast",
        json={"payload": 1},
        headers={"Authorization": f"Bearer {node.token('u1')}"},
    )
    assert r.status_code == 403  # users may not broadcast
