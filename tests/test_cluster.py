"""Courier on a real Redis Cluster (three masters, no replicas, on free ports).

The reliable core runs through the same cluster client `courier serve` builds
(``redis+cluster://``), with users whose partitions live on different nodes; then real
`courier serve` and `courier worker` processes serve real WebSocket clients.
Skipped, with the reason, when redis-server or redis-cli is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from websockets.asyncio.client import connect

from api.auth import issue
from api.redis_server import free_port
from api.runtime import redis_client
from delivery import resharding
from delivery.keys import GROUP, Keyspace
from delivery.producer import Limits, Producer, SyncProducer
from delivery.redis_clients import (
    AsyncCluster,
    SlotMigrating,
    SyncCluster,
    node_pubsub,
    node_subscribe,
    sync_client,
)
from delivery.replication import NotReplicated
from delivery.settings import Settings
from delivery.store import Timing
from tests.api.conftest import Client
from tests.cluster_support import ClusterUnavailable, LocalCluster
from tests.support import Harness, NodeDevice, raw_timeline, spread_users, stop_process

pytestmark = pytest.mark.slow

COURIER = str(Path(sys.executable).with_name("courier"))
SECRET = "courier-cluster-test-secret-0123456789"
PARTITIONS = 8


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    try:
        c = LocalCluster(tmp_path_factory.mktemp("cluster")).start()
    except ClusterUnavailable as e:
        pytest.skip(f"no local Redis Cluster: {e}")
    yield c
    c.stop()


@pytest.fixture
def ks() -> Keyspace:
    # what Settings.keyspace() builds for a redis+cluster:// URL
    return Keyspace(
        prefix=f"t{secrets.token_hex(4)}", partitions=PARTITIONS, spread=True, sharded=True
    )


@pytest.fixture
async def rc(cluster: LocalCluster, ks: Keyspace) -> AsyncIterator[aioredis.Redis]:
    client = redis_client(cluster.url, pubsub_key=ks.prefix)  # what Runtime.build makes
    assert isinstance(client, AsyncCluster)
    yield client
    await client.aclose()


async def owner(rc: aioredis.Redis, key: str) -> str:
    """ "host:port" of the primary serving a key's (or channel name's) slot, as the
    servers say (CLUSTER KEYSLOT, CLUSTER SLOTS)."""
    slots = await rc.cluster_slots()  # type: ignore[attr-defined]
    slot = int(await rc.execute_command("CLUSTER KEYSLOT", key))
    ((host, port),) = [v["primary"] for (lo, hi), v in slots.items() if lo <= slot <= hi]
    return f"{host}:{port}"


async def partition_nodes(rc: aioredis.Redis, ks: Keyspace) -> dict[int, str]:
    """partition -> the primary serving its slot."""
    return {p: await owner(rc, ks.part(p)) for p in range(ks.partitions)}


def fast_timing(ack_timeout_ms: int = 300) -> Timing:
    return Timing(
        ack_timeout_ms=ack_timeout_ms,
        heartbeat_timeout_ms=60_000,
        retry_base_seconds=0.05,
        retry_max_seconds=0.2,
        retention_ms=3_600_000,
    )


# -- the core through the cluster client ----------------------------------------------------


async def test_partitions_spread_evenly_over_the_masters(
    cluster: LocalCluster, rc: aioredis.Redis, ks: Keyspace
) -> None:
    """The servers' own CLUSTER SLOTS and KEYSLOT: 8 partitions on 3 masters split
    3/3/2 (``{pK}`` tags split 4/2/2), 6 split 2/2/2."""
    spread = Counter((await partition_nodes(rc, ks)).values())
    assert sorted(spread.values()) == [2, 3, 3]
    old = Keyspace(ks.prefix, PARTITIONS)
    assert sorted(Counter((await partition_nodes(rc, old)).values()).values()) == [2, 2, 4]
    six = Keyspace(ks.prefix, 6, spread=True)
    assert sorted(Counter((await partition_nodes(rc, six)).values()).values()) == [2, 2, 2]


async def test_lifecycle_over_partitions_on_different_nodes(
    rc: aioredis.Redis, ks: Keyspace
) -> None:
    owners = await partition_nodes(rc, ks)
    users = spread_users(ks, per_partition=1)
    assert len({owners[ks.partition_of(u)] for u in users}) >= 2  # really spread over nodes
    h = await Harness(rc, ks, fast_timing(), Limits()).start()
    for u in users:
        await h.connect(u)
    first = {u: await h.producer.send(u, {"to": u}) for u in users}
    # A batch is one pipeline whose script calls go to several nodes.
    batch = await h.producer.submit_many({"user_id": u, "payload": {"n": 2}} for u in users)
    second = {acc[0].user_id: acc[0] for acc in batch}
    assert {a.status for a in [*first.values(), *second.values()]} == {"queued"}

    async def all_received() -> bool:
        return all(len(h.devices.frames[u]) == 2 for u in users)

    await h.pump(all_received)
    for u in users:
        assert h.devices.ids(u) == [first[u].id, second[u].id]
        assert h.devices.frames[u][0]["payload"] == {"to": u}
    for u in users:
        ids = [first[u].id, second[u].id]
        assert await h.ack(u, ids) == {i: "ok" for i in ids}
    for u in users:
        msg = await h.store.get(first[u].id)
        assert msg.status == "delivered"
        assert [e.event for e in msg.timeline] == ["queued", "sent", "acked"]
    pending = [await rc.xpending(ks.stream(p, "normal"), GROUP) for p in range(ks.partitions)]
    assert [x["pending"] for x in pending] == [0] * 8  # no in-flight record left


async def test_delay_and_retries_to_dead_letter_on_two_nodes(
    rc: aioredis.Redis, ks: Keyspace
) -> None:
    owners = await partition_nodes(rc, ks)
    users = spread_users(ks, per_partition=1)
    later_user = users[0]
    lost_user = next(
        u for u in users if owners[ks.partition_of(u)] != owners[ks.partition_of(later_user)]
    )
    h = await Harness(rc, ks, fast_timing(ack_timeout_ms=100), Limits()).start()
    await h.connect(later_user)
    await h.connect(lost_user)  # receives, never acks
    later = await h.producer.send(later_user, {"n": 1}, delay_seconds=0.1)
    lost = await h.producer.send(lost_user, {"n": 2}, max_attempts=2)
    assert later.status == "scheduled"

    async def got_later() -> bool:
        return later.id in h.devices.ids(later_user)

    await h.pump(got_later)
    assert await h.ack(later_user, [later.id]) == {later.id: "ok"}
    assert await h.status(later.id) == "delivered"

    async def dead() -> bool:
        return await h.status(lost.id) == "dead"

    await h.pump(dead)
    assert h.devices.ids(lost_user) == [lost.id, lost.id]  # attempts 1 and 2
    tl = await raw_timeline(rc, ks, lost.id)
    assert [e["e"] for e in tl] == ["queued", "sent", "retry", "queued", "sent", "dead"]
    dlq = await rc.xrange(ks.key(ks.partition_of(lost_user), "dlq"))
    assert [(f[b"id"].decode(), f[b"reason"].decode()) for _, f in dlq] == [
        (lost.id, "ack_timeout")
    ]


def sync_seed(cluster: LocalCluster) -> Any:
    import redis as sync_redis

    return sync_redis.Redis(port=cluster.ports[0])


async def command_counts(cluster: LocalCluster, *names: str) -> dict[int, dict[str, int]]:
    """port -> calls of each command (INFO commandstats) on every master."""
    out: dict[int, dict[str, int]] = {}
    for port in cluster.master_ports:
        node = aioredis.Redis(port=port)
        try:
            stats = await node.info("commandstats")
        finally:
            await node.aclose()
        out[port] = {n: int(stats.get(f"cmdstat_{n}", {}).get("calls", 0)) for n in names}
    return out


async def reset_stats(cluster: LocalCluster) -> None:
    for port in cluster.master_ports:
        node = aioredis.Redis(port=port)
        try:
            await node.config_resetstat()
        finally:
            await node.aclose()


async def test_frames_to_edge_nodes_go_over_shard_channels_on_their_own_masters(
    cluster: LocalCluster, rc: aioredis.Redis, ks: Keyspace
) -> None:
    """Each edge node's channel is a shard channel in the slot of its node id: frames
    to it are SPUBLISHed on the master serving that slot only, whose answer counts the
    node (zero would mean "node gone" and a retry), so every message goes out once.
    No stream read costs a COMMAND GETKEYS round trip."""
    assert isinstance(rc, AsyncCluster)
    by_master: dict[str, str] = {}  # master -> an edge node id whose channel it serves
    for i in range(200):
        by_master.setdefault(await owner(rc, ks.node_channel(f"edge-{i}")), f"edge-{i}")
    assert len(by_master) == 3  # node ids spread their channels over every master
    async with node_pubsub(rc, ks.node_channel("edge-0"), sharded=True) as ps:
        await node_subscribe(ps, ks.node_channel("edge-0"), sharded=True)
        assert await rc.spublish(ks.node_channel("edge-0"), b"x") == 1  # type: ignore[attr-defined]
        assert await rc.spublish(ks.node_channel("nobody"), b"x") == 0  # type: ignore[attr-defined]
    users = spread_users(ks, per_partition=1)
    h = await Harness(rc, ks, fast_timing(ack_timeout_ms=5000), Limits()).start()
    edges = [
        await NodeDevice(rc, h.store, h.presence, n, users).start() for n in by_master.values()
    ]
    await reset_stats(cluster)
    try:
        sent = [await h.producer.send(u, {"to": u}) for u in users]

        async def delivered() -> bool:
            for e in edges:
                e.check()
            return all([await h.status(a.id) == "delivered" for a in sent])

        await h.pump(delivered)
        got = sorted(mid for e in edges for mid in e.received)
        # each user's frame reached each edge holding one of its connections, once
        assert got == sorted(a.id for a in sent for _ in edges)
        assert sum(e.duplicates for e in edges) == 0
        for a in sent:
            events = [e["e"] for e in await raw_timeline(rc, ks, a.id)]
            assert events == ["queued", "sent", "acked"]  # no "unreachable" retry
        counts = await command_counts(cluster, "spublish", "publish", "command|getkeys")
        assert all(c["spublish"] > 0 for c in counts.values())  # every master carried some
        assert sum(c["publish"] for c in counts.values()) == 0
        assert sum(c["command|getkeys"] for c in counts.values()) == 0
    finally:
        for e in edges:
            await e.stop()


async def test_an_edge_listener_follows_its_shard_channel_to_the_master_it_moved_to(
    cluster: LocalCluster, rc: aioredis.Redis, ks: Keyspace
) -> None:
    """The slot of an edge node's channel moved (resharding): the master unsubscribes
    the node (sunsubscribe) and the node subscribes again, through a client whose slot
    map still names the old master: that one answers MOVED, the map learns from it and
    the next try (the listener's retry) subscribes where the slot is now."""
    own = ks.node_channel(f"edge-{secrets.token_hex(3)}")
    edge = redis_client(cluster.url, pubsub_key=ks.prefix)  # another process's client
    await edge.ping()
    places = {m.address: m for m in resharding.masters(sync_seed(cluster))}
    here = await owner(rc, own)
    target = next(m for a, m in places.items() if a != here)
    slot = int(await rc.execute_command("CLUSTER KEYSLOT", own))
    try:
        async with node_pubsub(edge, own, sharded=True) as ps:
            await node_subscribe(ps, own, sharded=True)
            assert (await ps.get_message(timeout=2) or {}).get("type") == "ssubscribe"
            for address in places:  # an empty slot: given to the target at once
                node = aioredis.Redis.from_url(f"redis://{address}")
                await node.execute_command("CLUSTER SETSLOT", slot, "NODE", target.id)
                await node.aclose()
            assert (await ps.get_message(timeout=2) or {}).get("type") == "sunsubscribe"
        heard = []
        for _ in range(3):  # what the listener's retrying does
            try:
                async with node_pubsub(edge, own, sharded=True) as ps:
                    await node_subscribe(ps, own, sharded=True)
                    heard.append((await ps.get_message(timeout=2) or {}).get("type"))
                    assert await rc.spublish(own, b"x") == 1  # type: ignore[attr-defined]
                    assert (await ps.get_message(timeout=2) or {}).get("data") == b"x"
                    break
            except RedisConnectionError as e:
                heard.append(type(e).__name__)
        assert heard == ["ConnectionError", "ssubscribe"]
    finally:
        await edge.aclose()


async def test_sync_replicas_waits_for_the_partitions_replicas(
    cluster: LocalCluster, rc: aioredis.Redis, ks: Keyspace
) -> None:
    """SYNC_REPLICAS=1: a batch over every partition is accepted only once each master
    it wrote to has the writes on its replica, so the replicas hold every message when
    the producer gets its answer; 2 (more replicas than there are) is not_replicated,
    and the messages are written all the same."""
    users = spread_users(ks, per_partition=1)
    producer = Producer(rc, keyspace=ks, limits=Limits(sync_replicas=1, sync_timeout_ms=2000))
    batch = await producer.submit_many({"user_id": u, "payload": {"r": 1}} for u in users)
    ids = [acc[0].id for acc in batch]
    replicas = [p for p, role in cluster.roles().items() if role == "slave"]
    found = 0
    for port in replicas:  # read the replicas at once: no waiting
        replica = aioredis.Redis(port=port)
        try:
            await replica.execute_command("READONLY")
            for mid in ids:
                slot = int(await rc.execute_command("CLUSTER KEYSLOT", ks.msg(mid)))
                mine = await replica.execute_command("CLUSTER COUNTKEYSINSLOT", slot)
                if mine and await replica.hget(ks.msg(mid), "s") == b"queued":
                    found += 1
        finally:
            await replica.aclose()
    assert found == len(ids)  # each message on its master's replica
    greedy = Producer(rc, keyspace=ks, limits=Limits(sync_replicas=2, sync_timeout_ms=50))
    with pytest.raises(NotReplicated, match="acknowledged by 1 of the 2 replicas"):
        await greedy.send(users[0], {"r": 2})
    index = await rc.zrange(ks.user(users[0], "user_msgs"), 0, -1)
    assert len(index) == 2  # the refused one was written too


@contextlib.asynccontextmanager
async def migrating(
    cluster: LocalCluster, rc: aioredis.Redis, key: str
) -> AsyncIterator[tuple[int, aioredis.Redis]]:
    """The slot of ``key`` MIGRATING from its master to another (IMPORTING there) for
    the block, STABLE again after it: (the slot, a client of the target)."""
    places = {m.address: m for m in resharding.masters(sync_seed(cluster))}
    here = await owner(rc, key)
    target = next(m for a, m in places.items() if a != here)
    slot = int(await rc.execute_command("CLUSTER KEYSLOT", key))
    src = aioredis.Redis.from_url(f"redis://{here}")
    dst = aioredis.Redis.from_url(f"redis://{target.address}")
    try:
        await dst.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", places[here].id)
        await src.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", target.id)
        yield slot, dst
    finally:
        for node in (src, dst):
            await node.execute_command("CLUSTER SETSLOT", slot, "STABLE")
            await node.aclose()


async def test_scripts_are_refused_while_their_partition_migrates_never_run_on_half(
    cluster: LocalCluster, rc: aioredis.Redis, ks: Keyspace
) -> None:
    """A partition's slot MIGRATING: the source answers ASK for every script (its only
    declared key never exists); the client refuses it (TRYAGAIN, a 503 upstream)
    instead of running the script on the target, alone or pipelined: no script writes
    there. Once the slot is stable again the same calls go through."""
    users = spread_users(ks, per_partition=1)
    user = users[0]
    h = await Harness(rc, ks, fast_timing(), Limits()).start()
    first = await h.producer.send(user, {"n": 1})
    async with migrating(cluster, rc, ks.part_of_user(user)) as (slot, dst):
        with pytest.raises(SlotMigrating):
            await h.producer.send(user, {"n": 2})
        depth = [await rc.xlen(ks.stream(p, "normal")) for p in range(ks.partitions)]
        with pytest.raises(SlotMigrating):  # a batch: one pipeline over every master
            await h.producer.submit_many({"user_id": u, "payload": {"n": 3}} for u in users)
        # all or nothing: its reservation there refused, no partition written (the
        # others' were, and the request answered 503 as if nothing was)
        assert [await rc.xlen(ks.stream(p, "normal")) for p in range(ks.partitions)] == depth
        assert await dst.execute_command("CLUSTER GETKEYSINSLOT", slot, 100) == []
        assert await h.status(first.id) == "queued"  # single-key reads follow ASK
    again = await h.producer.send(user, {"n": 4})
    assert again.status == "queued"


async def test_the_blocking_producer_refuses_scripts_on_a_migrating_partition_too(
    cluster: LocalCluster, rc: aioredis.Redis, ks: Keyspace
) -> None:
    """The same for SyncProducer (redis-py's blocking cluster client follows ASK with
    ASKING, which would run the enqueue on the target against the keys moved so far: a
    second stream there, and the move's MIGRATE of the real one then fails BUSYKEY)."""
    user = spread_users(ks, per_partition=1)[0]
    sync = SyncProducer(sync_client(cluster.url, pubsub_key=ks.prefix), keyspace=ks)
    first = sync.send(user, {"n": 1})
    async with migrating(cluster, rc, ks.part_of_user(user)) as (slot, dst):
        with pytest.raises(SlotMigrating):
            sync.send(user, {"n": 2})
        users = spread_users(ks, per_partition=1)
        depth = [await rc.xlen(ks.stream(p, "normal")) for p in range(ks.partitions)]
        with pytest.raises(SlotMigrating):  # pipelined: the retry of an ASK alone
            sync.submit_many({"user_id": u, "payload": {"n": 3}} for u in users)
        assert [await rc.xlen(ks.stream(p, "normal")) for p in range(ks.partitions)] == depth
        assert await dst.execute_command("CLUSTER GETKEYSINSLOT", slot, 100) == []
    assert sync.send(user, {"n": 4}).status == "queued"
    assert await rc.hget(ks.msg(first.id), "s") == b"queued"
    sync.close()


async def test_reply_published_by_a_script_on_another_node_reaches_the_producer(
    rc: aioredis.Redis, ks: Keyspace
) -> None:
    """reply.lua PUBLISHes on the user's partition node; the producer waiting in
    request() listens on the pub/sub node: Redis Cluster carries it across."""
    assert isinstance(rc, AsyncCluster)
    pubsub = await rc.pubsub_node()
    hub = f"{pubsub.host}:{pubsub.port}"
    owners = await partition_nodes(rc, ks)
    user = next(u for u in spread_users(ks, per_partition=1) if owners[ks.partition_of(u)] != hub)
    h = await Harness(rc, ks, fast_timing(ack_timeout_ms=5000), Limits()).start()
    await h.connect(user)
    waiting = asyncio.create_task(h.producer.request(user, {"q": "publish?"}, timeout=10))

    async def asked() -> bool:
        return bool(h.devices.frames[user])

    await h.pump(asked)
    mid = h.devices.ids(user)[0]
    assert not waiting.done()
    assert await h.store.reply(user_id=user, conn_id="c1", message_id=mid, data=b'"yes"') == "ok"
    assert await asyncio.wait_for(waiting, 5) == "yes"


async def test_producers_from_settings_and_scripts_lost_by_the_servers(
    cluster: LocalCluster, rc: aioredis.Redis, ks: Keyspace
) -> None:
    """COURIER_REDIS_CLUSTER=true with a plain URL of any node works like the
    redis+cluster:// scheme; a SCRIPT FLUSH (a restarted or promoted primary) is
    survived by pipelined script calls."""
    settings = Settings(
        redis_url=f"redis://127.0.0.1:{cluster.ports[-1]}",
        redis_cluster=True,
        key_prefix=ks.prefix,
        partitions=PARTITIONS,
    )
    users = spread_users(ks, per_partition=1)
    sync = SyncProducer.from_settings(settings)
    producer = Producer.from_settings(settings)
    assert isinstance(sync.redis, SyncCluster) and isinstance(producer.redis, AsyncCluster)
    try:
        ids = []
        for _ in range(2):
            batch = sync.submit_many({"user_id": u, "payload": {"sync": True}} for u in users)
            ids += [acc[0].id for acc in batch]
            await rc.script_flush()  # type: ignore[attr-defined]  # every primary
            batch = await producer.submit_many({"user_id": u, "payload": {}} for u in users)
            ids += [acc[0].id for acc in batch]
            await rc.script_flush()  # type: ignore[attr-defined]
        assert len(set(ids)) == 4 * len(users)
        assert {await rc.hget(ks.msg(i), "s") for i in ids} == {b"queued"}
        depth = sum([await rc.xlen(ks.stream(p, "normal")) for p in range(ks.partitions)])
        assert depth == len(ids)
    finally:
        sync.close()
        await producer.aclose()


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([COURIER, *args], env=env, capture_output=True, text=True, timeout=60)


async def test_a_cluster_holding_pk_keys_is_refused_with_the_upgrade_note(
    cluster: LocalCluster, ks: Keyspace, rc: aioredis.Redis, tmp_path: Path
) -> None:
    """Spread tags (the default on a cluster) over streams of the older {pK} layout: the
    CLI and serve refuse in one line naming the way out, instead of leaving them unseen;
    PARTITION_TAGS=pk serves them."""
    old = Keyspace(ks.prefix, ks.partitions, spread=False, sharded=True)
    await rc.xadd(old.stream(1, "normal"), {"x": "1"})
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("COURIER_")},
        "COURIER_REDIS_URL": cluster.url,
        "COURIER_KEY_PREFIX": ks.prefix,
        "COURIER_PARTITIONS": str(ks.partitions),
        "COURIER_DATA_DIR": str(tmp_path),
        "COURIER_JWT_SECRET": SECRET,
    }
    try:
        for cmd in (["stats", "--json"], ["serve", "--port", str(free_port())]):
            done = await asyncio.to_thread(_cli, cmd, env)
            assert done.returncode != 0, done.stdout
            assert "{pK} key layout" in done.stderr and "COURIER_PARTITION_TAGS=pk" in done.stderr
            assert "Traceback" not in done.stderr, done.stderr
        done = await asyncio.to_thread(
            _cli, ["stats", "--json"], {**env, "COURIER_PARTITION_TAGS": "pk"}
        )
        assert done.returncode == 0, done.stderr
    finally:
        await rc.delete(old.stream(1, "normal"))


# -- real processes ---------------------------------------------------------------------------


class Proc:
    """One `courier serve` or `courier worker` subprocess on the cluster."""

    def __init__(self, cmd: list[str], env: dict[str, str], log: Path) -> None:
        self.port = int(env["COURIER_PORT"])
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/v1/ws"
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [COURIER, *cmd], env=env, stdout=out, stderr=subprocess.STDOUT
            )

    def wait_ready(self, within: float = 20) -> None:
        deadline = time.monotonic() + within
        while True:
            assert self.proc.poll() is None, f"exited:\n{self.log.read_text()}"
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"not ready:\n{self.log.read_text()}"
            time.sleep(0.05)


@pytest.fixture(scope="module")
def deployment(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """`courier serve` with its consumers, and a second edge (`serve --no-consumers`)
    fed by a separate `courier worker`, all on the cluster."""
    tmp = tmp_path_factory.mktemp("deployment")
    prefix = f"t{secrets.token_hex(4)}"
    base = {
        **{k: v for k, v in os.environ.items() if not k.startswith("COURIER_")},
        "COURIER_REDIS_URL": cluster.url,
        "COURIER_KEY_PREFIX": prefix,
        "COURIER_PARTITIONS": str(PARTITIONS),
        "COURIER_JWT_SECRET": SECRET,
        "COURIER_SCHEDULER_INTERVAL_SECONDS": "0.05",
        "COURIER_READ_BLOCK_MS": "100",
        "COURIER_LOG_LEVEL": "INFO",
    }
    base.pop("REDIS_URL", None)
    procs = []
    for name, cmd in (
        ("serve", ["serve"]),
        ("edge", ["serve", "--no-consumers"]),
        ("worker", ["worker"]),
    ):
        env = {
            **base,
            "COURIER_PORT": str(free_port()),
            "COURIER_NODE_ID": f"{name}-{prefix}",
            "COURIER_DATA_DIR": str(tmp / name),
        }
        procs.append(Proc(cmd, env, tmp / f"{name}.log"))
    try:
        for p in procs[:2]:
            p.wait_ready()
        yield {"serve": procs[0], "edge": procs[1], "worker": procs[2], "prefix": prefix}
    finally:
        for p in procs:
            stop_process(p.proc)


def token(user: str, role: str = "user") -> str:
    return issue(Settings(jwt_secret=SECRET), user, role=role)


async def post(node: Proc, user: str, payload: Any) -> str:
    async with httpx.AsyncClient(base_url=node.url, timeout=10) as http:
        r = await http.post(
            "/v1/messages",
            json={"user_id": user, "payload": payload},
            headers={"Authorization": f"Bearer {token('backend', 'service')}"},
        )
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


async def admin_view(node: Proc, mid: str, status: str, within: float = 10) -> dict[str, Any]:
    """GET /v1/messages/{id} as admin until it shows `status`."""
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(base_url=node.url, timeout=10) as http:
        while True:
            r = await http.get(
                f"/v1/messages/{mid}", headers={"Authorization": f"Bearer {token('ops', 'admin')}"}
            )
            assert r.status_code == 200, r.text
            body: dict[str, Any] = r.json()
            if body["status"] == status:
                return body
            assert time.monotonic() < deadline, f"{mid} is {body['status']}, not {status}"
            await asyncio.sleep(0.02)


async def online(node: Proc, user: str) -> Client:
    c = Client(await connect(f"{node.ws_url}?token={token(user)}", open_timeout=5))
    await c.recv_type("connected")
    return c


async def test_serve_delivers_over_websocket_and_parks_for_offline_users(
    deployment: dict[str, Any],
) -> None:
    node: Proc = deployment["serve"]
    alice = await online(node, "alice")
    try:
        mid = await post(node, "alice", {"text": "hello from a cluster"})
        frame = await alice.recv_type("message")
        assert frame["id"] == mid and frame["payload"] == {"text": "hello from a cluster"}
        await alice.ack(mid)
        body = await admin_view(node, mid, "delivered")
        assert [e["event"] for e in body["timeline"]] == ["queued", "sent", "acked"]
        assert body["recipient"] == "alice" and body["delivered_at"] is not None
    finally:
        await alice.close()

    parked = [await post(node, "bob", {"n": n}) for n in range(3)]  # bob is offline
    for mid in parked:
        await admin_view(node, mid, "parked")
    bob = await online(node, "bob")
    try:
        frames = await bob.messages(3)
        assert [f["id"] for f in frames] == parked
        await bob.ack(*parked)
        for mid in parked:
            body = await admin_view(node, mid, "delivered")
            assert [e["event"] for e in body["timeline"]] == ["queued", "parked", "sent", "acked"]
    finally:
        await bob.close()


async def test_worker_process_pushes_to_edge_node_over_pubsub(
    deployment: dict[str, Any],
) -> None:
    edge: Proc = deployment["edge"]
    assert deployment["worker"].proc.poll() is None
    carol = await online(edge, "carol")
    try:
        mid = await post(edge, "carol", {"via": "worker"})
        frame = await carol.recv_type("message", timeout=10)
        assert frame["id"] == mid and frame["attempt"] == 1
        await carol.ack(mid)
        body = await admin_view(edge, mid, "delivered")
        assert [e["event"] for e in body["timeline"]] == ["queued", "sent", "acked"]
        # A broadcast reaches the edge node through the cluster's pub/sub, and its
        # report (a same-slot MULTI) counts it.
        async with httpx.AsyncClient(base_url=edge.url, timeout=10) as http:
            r = await http.post(
                "/v1/broadcast",
                json={"payload": {"notice": "maintenance"}, "users": ["carol"]},
                headers={"Authorization": f"Bearer {token('backend', 'service')}"},
            )
        assert r.status_code == 200, r.text
        report = r.json()
        assert report["nodes"] == report["nodes_reported"] == 2  # serve and edge listen
        assert report["connections"] == 1
        got = await carol.recv_type("broadcast")
        assert got["payload"] == {"notice": "maintenance"}
        async with httpx.AsyncClient(base_url=edge.url, timeout=10) as http:
            r = await http.get(
                "/v1/stats", headers={"Authorization": f"Bearer {token('ops', 'admin')}"}
            )
        assert r.status_code == 200, r.text
        stats = r.json()
        assert len(stats["partitions"]) == PARTITIONS
        assert stats["consumers_alive"] >= 2  # serve's and the worker's
    finally:
        await carol.close()
