from __future__ import annotations

import itertools

from tests.support import Harness, spread_users


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


async def test_a_read_over_several_partitions_sends_every_high_before_any_normal(
    h: Harness,
) -> None:
    bob = next(u for u in spread_users(h.keyspace, 1) if not same_partition(h, u, "alice"))
    await h.connect("alice")
    await h.connect(bob)
    for i in range(2):
        for prio in ("low", "normal", "high"):
            for user in ("alice", bob):
                await h.producer.send(user, {"i": i}, priority=prio)

    n = await h.worker.process_one(range(h.keyspace.partitions), block_ms=0)

    assert n == 12  # one XREADGROUP over every partition's three streams took them all
    # Across both partitions every high went out before any normal, before any low ...
    prios = [f["priority"] for f in h.devices.arrivals]
    assert prios == ["high"] * 4 + ["normal"] * 4 + ["low"] * 4
    # ... and each user got them oldest first within a priority.
    for user in ("alice", bob):
        got = [(f["priority"], f["payload"]["i"]) for f in h.devices.frames[user]]
        assert got == [(p, i) for p in ("high", "normal", "low") for i in (0, 1)]


def same_partition(h: Harness, a: str, b: str) -> bool:
    return h.keyspace.partition_of(a) == h.keyspace.partition_of(b)


async def test_messages_parked_in_one_millisecond_are_drained_in_enqueue_order(
    h: Harness,
) -> None:
    """A batch script's creation time is fixed while its stream entries take the clock's
    milliseconds (each restarting the entry sequence): thousands of messages enqueued
    in batches of 100 come back from the parked set exactly in enqueue order."""
    ids = []
    for k in range(30):
        batch = [{"user_id": "offline", "payload": {"n": k * 100 + i}} for i in range(100)]
        ids += [a.id for (a,) in await h.producer.submit_many(batch)]
    await h.pump()
    drained: list[str] = []
    remaining = 1
    while remaining:
        remaining, pushes = await h.store.unpark(
            user_id="offline", node_id="n", conn_id="c", limit=500
        )
        drained += [p.id for p in pushes]
    rank = {mid: i for i, mid in enumerate(ids)}
    inversions = sum(1 for a, b in itertools.pairwise(drained) if rank[a] > rank[b])
    assert inversions == 0 and drained == ids
