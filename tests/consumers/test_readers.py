"""The readers of a process: one XREADGROUP over every partition on one server, one
per partition on Redis Cluster; a lost consumer group is recreated without losing a read."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.crc import key_slot

from consumers.runner import read_groups
from delivery.keys import GROUP, Keyspace
from delivery.producer import Limits
from delivery.store import Timing
from tests.support import Harness, spread_users


def test_one_reader_on_a_server_one_per_partition_on_a_cluster() -> None:
    ks = Keyspace(prefix="courier", partitions=8)
    assert read_groups(ks, range(8), cluster=False) == [list(range(8))]
    assert read_groups(ks, [3, 5], cluster=False) == [[3, 5]]
    assert read_groups(ks, [], cluster=False) == []
    # Each partition has a slot of its own: one XREADGROUP may not take two.
    assert len({key_slot(ks.part(p).encode()) for p in range(8)}) == 8
    assert read_groups(ks, range(8), cluster=True) == [[p] for p in range(8)]


async def test_one_read_takes_new_entries_of_every_partition(
    r: aioredis.Redis, keyspace: Keyspace
) -> None:
    h = await Harness(r, keyspace, Timing(), Limits()).start()
    users = spread_users(keyspace, per_partition=2)
    for u in users:
        await h.connect(u)
    sent = {u: (await h.producer.send(u, {"to": u})).id for u in users}

    assert await h.worker.process_one(range(keyspace.partitions), block_ms=0) == len(users)

    assert {u: h.devices.ids(u) for u in users} == {u: [sent[u]] for u in users}
    assert {await h.status(m) for m in sent.values()} == {"sent"}
    for p in range(keyspace.partitions):  # each sent one's entry is its in-flight record
        stream = keyspace.stream(p, "normal")
        assert (await r.xpending(stream, GROUP))["pending"] == 2 and await r.xlen(stream) == 2
    assert await h.worker.process_one(range(keyspace.partitions), block_ms=0) == 0


async def test_a_lost_group_is_recreated_and_the_next_read_delivers(
    r: aioredis.Redis, keyspace: Keyspace
) -> None:
    """Redis lost its data (no AOF) or an operator destroyed the group on one stream:
    the read over every partition fails with NOGROUP; the worker recreates the groups
    and goes on."""
    h = await Harness(r, keyspace, Timing(), Limits()).start()
    users = spread_users(keyspace, per_partition=1)
    for u in users:
        await h.connect(u)
    lost = keyspace.stream(keyspace.partition_of(users[-1]), "low")
    await r.xgroup_destroy(lost, GROUP)
    sent = {u: (await h.producer.send(u, {"to": u}, priority="low")).id for u in users}

    assert await h.worker.process_one(range(keyspace.partitions), block_ms=0) == 0
    assert [g["name"] for g in await r.xinfo_groups(lost)] == [GROUP.encode()]
    # The group starts at the beginning of the stream: the entry added while it was
    # missing is read too.
    assert await h.worker.process_one(range(keyspace.partitions), block_ms=0) == len(users)
    assert {u: h.devices.ids(u) for u in users} == {u: [sent[u]] for u in users}
