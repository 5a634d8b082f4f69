from __future__ import annotations

from tests.support import Harness


async def test_one_batch_delivers_high_before_normal_before_low(h: Harness) -> None:
    await h.connect("alice")
    # A backlog built while no worker ran, priorities interleaved and lowest first.
    for i in range(3):
        for prio in ("low", "normal", "high"):
            await h.producer.send("alice", {"i": i}, priority=prio)

    n = await h.worker.process_one(h.keyspace.partition_of("alice"), block_ms=0)

    assert n == 9  # one XREADGROUP over the three streams took the whole backlog
    got = [(f["priority"], f["payload"]["i"]) for f in h.devices.frames["alice"]]
    assert got == [
        ("high", 0), ("high", 1), ("high", 2),
        ("normal", 0), ("normal", 1), ("normal", 2),
        ("low", 0), ("low", 1), ("low", 2),
    ]  # fmt: skip


async def test_parked_messages_go_out_highest_priority_first_then_oldest(h: Harness) -> None:
    ids = {}
    for i in range(2):
        for prio in ("low", "high", "normal"):
            ids[(prio, i)] = (await h.producer.send("bob", {"i": i}, priority=prio)).id
    await h.pump()  # bob is offline: all six are parked
    assert {await h.status(m) for m in ids.values()} == {"parked"}

    remaining, pushes = await h.store.unpark(user_id="bob", node_id="n1", conn_id="c9", limit=4)

    assert remaining == 2
    assert [p.id for p in pushes] == [
        ids[("high", 0)],
        ids[("high", 1)],
        ids[("normal", 0)],
        ids[("normal", 1)],
    ]
    _, rest = await h.store.unpark(user_id="bob", node_id="n1", conn_id="c9", limit=4)
    assert [p.id for p in rest] == [ids[("low", 0)], ids[("low", 1)]]
    assert all(p.attempt == 1 and p.targets == (("n1", "c9"),) for p in pushes + rest)
