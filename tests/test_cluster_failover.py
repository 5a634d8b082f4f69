"""A real Redis Cluster (3 masters, two replicas each, AOF always) changing under load,
with real `courier serve` processes (`SYNC_REPLICAS=1`) and WebSocket clients: a
partition moved to another master (`courier cluster move`), then a master SIGKILLed.

Replication is asynchronous: without `SYNC_REPLICAS` a 202 can come before a replica
has the message, and a master killed then takes it along (35 of 606 accepted messages
in one run on a loaded machine). With `SYNC_REPLICAS=1` a 202 means a replica has it;
two replicas per master leave the promoted one a replica, so its partitions accept
again after the promotion.

What a user sees: every accepted message is delivered; a refusal is a JSON 503 with
`Retry-After` (never a 500), only for the partition that moves or the partitions of the
dead master, and only until it has moved or the replica is promoted; no WebSocket is
closed; the edges and the consumers recover by themselves. Skipped, with the reason,
when redis-server or redis-cli is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from api.auth import issue
from delivery.keys import Keyspace
from delivery.settings import Settings
from tests.cluster_support import ClusterUnavailable, LocalCluster
from tests.processes import COURIER, SECRET, Proc, serve_env
from tests.support import spread_users

pytestmark = pytest.mark.slow

PARTITIONS = 6


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    try:
        c = LocalCluster(tmp_path_factory.mktemp("failover"), replicas=2).start()
    except ClusterUnavailable as e:
        pytest.skip(f"no local Redis Cluster: {e}")
    yield c
    c.stop()


def token(user: str, role: str = "user") -> str:
    return issue(Settings(jwt_secret=SECRET), user, role=role)


def slot_owners(port: int) -> list[tuple[int, int, int]]:
    """(first slot, last slot, master port) as the node on ``port`` sees them."""
    client = redis.Redis(port=port)
    try:
        return [
            (lo, hi, int(nodes[0][1])) for lo, hi, *nodes in client.execute_command("CLUSTER SLOTS")
        ]
    finally:
        client.close()


def owner_of(slot: int, owners: list[tuple[int, int, int]]) -> int:
    return next(port for lo, hi, port in owners if lo <= slot <= hi)


@dataclass
class Device:
    """One user's WebSocket client: acks every message, records ids and the close."""

    user: str
    ws: ClientConnection
    got: set[str] = field(default_factory=set)
    close_code: int | None = None

    async def pings(self) -> None:
        """A live client's heartbeat (the server closes a silent one with 4408)."""
        with contextlib.suppress(ConnectionClosed):
            while True:
                await asyncio.sleep(0.3)
                await self.ws.send(orjson.dumps({"type": "ping"}).decode())

    async def run(self) -> None:
        beat = asyncio.create_task(self.pings())
        try:
            async for raw in self.ws:
                frame = orjson.loads(raw)
                if frame.get("type") == "message":
                    self.got.add(frame["id"])
                    await self.ws.send(orjson.dumps({"type": "ack", "id": frame["id"]}).decode())
        except ConnectionClosed:
            pass
        finally:
            beat.cancel()
        self.close_code = self.ws.close_code


@dataclass
class Answer:
    at: float
    user: str
    status: int
    body: dict[str, Any]
    retry_after: str | None


@pytest.fixture
async def edges(
    cluster: LocalCluster, tmp_path: Path
) -> AsyncIterator[tuple[Keyspace, list[Proc]]]:
    ks = Settings(
        redis_url=cluster.url, key_prefix=f"t{secrets.token_hex(4)}", partitions=PARTITIONS
    ).keyspace()
    procs = [
        Proc(
            name,
            serve_env(name, cluster.url, ks, tmp_path, COURIER_SYNC_REPLICAS="1"),
            tmp_path,
            *args,
        )
        for name, args in (("serve", ()), ("edge", ("--no-consumers",)))
    ]
    try:
        for p in procs:
            await p.ready()
        yield ks, procs
    finally:
        for p in procs:
            await p.stop()


class Load:
    """WebSocket devices for users of every partition, split over the edges, and four
    producers posting to them round robin over HTTP until :meth:`stop`."""

    def __init__(self, ks: Keyspace, procs: list[Proc]) -> None:
        self.ks = ks
        self.procs = procs
        self.users = spread_users(ks, per_partition=2)
        self.devices: list[Device] = []
        self.answers: list[Answer] = []
        self.stop_event = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self) -> Load:
        for i, u in enumerate(self.users):
            url = f"{self.procs[i % 2].ws_url}?token={token(u)}"
            ws = await connect(url, open_timeout=5)
            assert orjson.loads(await ws.recv())["type"] == "connected"
            self.devices.append(Device(u, ws))
        self.tasks = [asyncio.create_task(d.run()) for d in self.devices]
        self.producers = [asyncio.create_task(self._produce(k)) for k in range(4)]
        return self

    async def _produce(self, k: int) -> None:
        service = {"Authorization": f"Bearer {token('backend', 'service')}"}
        async with httpx.AsyncClient(base_url=self.procs[k % 2].url, timeout=10) as http:
            n = k
            while not self.stop_event.is_set():
                user = self.users[n % len(self.users)]
                n += 4
                r = await http.post(
                    "/v1/messages", json={"user_id": user, "payload": {"n": n}}, headers=service
                )
                try:
                    body = r.json()
                except ValueError:  # a plain-text answer: kept to fail the test
                    body = {"text": r.text}
                self.answers.append(
                    Answer(
                        time.monotonic(), user, r.status_code, body, r.headers.get("retry-after")
                    )
                )
                await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self.stop_event.set()
        await asyncio.gather(*self.producers)

    @property
    def accepted(self) -> dict[str, str]:
        return {a.body["id"]: a.user for a in self.answers if a.status == 202}

    def refused(self, allowed: set[int], since: float, until: float) -> list[Answer]:
        """The refusals, each checked: a JSON 503 with Retry-After, for a partition of
        ``allowed``, between ``since`` and ``until``."""
        out = [a for a in self.answers if a.status != 202]
        for a in out:
            assert a.status == 503, (a.status, a.body)
            # unavailable while its master is away; not_replicated for a request whose
            # WAIT the failover interrupted (the message may still be delivered)
            code = a.body["error"]["code"]
            assert code in ("redis_unavailable", "not_replicated") and a.retry_after, a
            assert self.ks.partition_of(a.user) in allowed, (a, allowed)
            assert since <= a.at <= until, (a.at - since, until - since)
        return out

    async def all_delivered(self, within: float = 30) -> None:
        """Every accepted message reached its user (0 lost); no socket was closed."""
        accepted = self.accepted
        deadline = time.monotonic() + within
        while True:
            got = {mid for d in self.devices for mid in d.got}
            missing = set(accepted) - got
            if not missing or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        lost_in = sorted({self.ks.partition_of(accepted[m]) for m in missing})
        assert not missing, (
            f"{len(missing)} of {len(accepted)} accepted messages never arrived "
            f"(partitions {lost_in})"
        )
        assert [d.close_code for d in self.devices] == [None] * len(self.devices)
        for d in self.devices:
            await d.ws.close()
        for t in self.tasks:
            with contextlib.suppress(Exception):
                await t
        for p in self.procs:
            assert p.proc.poll() is None, p.log_text()


def partition_masters(seed: int, ks: Keyspace) -> dict[int, int]:
    """partition -> port of the master serving it."""
    owners = slot_owners(seed)
    client = redis.Redis(port=seed)
    try:
        return {
            p: owner_of(int(client.cluster("KEYSLOT", ks.part(p))), owners)
            for p in range(ks.partitions)
        }
    finally:
        client.close()


async def test_a_partition_moved_under_load_loses_nothing_and_answers_no_500(
    cluster: LocalCluster, edges: tuple[Keyspace, list[Proc]], tmp_path: Path
) -> None:
    ks, procs = edges
    seed = cluster.ports[0]
    before = partition_masters(seed, ks)
    moving = 0
    target = next(m for m in cluster.master_ports if m != before[moving])
    load = await Load(ks, procs).start()
    try:
        await asyncio.sleep(2)  # the partition has streams, messages, presence ...
        env = serve_env("cli", cluster.url, ks, tmp_path)
        started = time.monotonic()
        done = await asyncio.create_subprocess_exec(
            COURIER, "cluster", "move", str(moving), "--to", f"127.0.0.1:{target}",
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await done.communicate()
        moved_at = time.monotonic()
        assert done.returncode == 0, out.decode()
        assert f"keys moved to 127.0.0.1:{target}" in out.decode()
        await asyncio.sleep(3)  # load goes on where it is now
    finally:
        await load.stop()
    after = partition_masters(seed, ks)
    assert after == {**before, moving: target}
    source = redis.Redis(port=before[moving])
    try:
        slot = int(source.cluster("KEYSLOT", ks.part(moving)))
        assert source.execute_command("CLUSTER COUNTKEYSINSLOT", slot) == 0  # all moved
    finally:
        source.close()
    refused = load.refused({moving}, started, moved_at + 2.0)
    later = [a for a in load.answers if a.at > moved_at + 2.0]
    assert {ks.partition_of(a.user) for a in later if a.status == 202} == set(range(PARTITIONS))
    await load.all_delivered()
    print(  # the figures docs/operations.md quotes (pytest -s)
        f"move: {out.decode().strip()} in {moved_at - started:.2f} s, "
        f"{len(load.accepted)} accepted, {len(refused)} refused (503)"
    )


async def test_a_master_killed_under_load_refuses_only_its_partitions_until_promotion(
    cluster: LocalCluster, edges: tuple[Keyspace, list[Proc]]
) -> None:
    ks, procs = edges
    seed = cluster.ports[0]  # the URL's node stays up: new processes can start
    victim = next(m for m in cluster.master_ports if m != seed)
    doomed = {p for p, m in partition_masters(seed, ks).items() if m == victim}
    assert doomed  # (two each, give or take the partition the test above moved)
    load = await Load(ks, procs).start()
    victim_node = cluster.node(victim)
    replica_ports = set(cluster.ports) - set(cluster.master_ports)
    try:
        await asyncio.sleep(2)
        assert victim_node.proc is not None
        killed_at = time.monotonic()
        os.kill(victim_node.proc.pid, signal.SIGKILL)
        promoted_at = None
        while promoted_at is None:  # one of the replicas becomes a master
            roles = await asyncio.to_thread(cluster.roles)
            if any(roles.get(p) == "master" for p in replica_ports):
                promoted_at = time.monotonic()
            else:
                assert time.monotonic() - killed_at < 20, "no replica was promoted"
                await asyncio.sleep(0.05)
        await asyncio.sleep(6)  # load goes on after the promotion
    finally:
        await load.stop()
    refused = load.refused(doomed, killed_at, promoted_at + 2.0)
    during = [a for a in load.answers if killed_at <= a.at <= promoted_at]
    others = [a for a in during if ks.partition_of(a.user) not in doomed]
    assert others and all(a.status == 202 for a in others)  # the other masters served on
    after = [a for a in load.answers if a.at > promoted_at + 2.0]
    assert {ks.partition_of(a.user) for a in after if a.status == 202} == set(range(PARTITIONS))
    await load.all_delivered()
    last = max((a.at for a in refused), default=killed_at)
    print(  # the figures docs/operations.md quotes (pytest -s)
        f"failover: {len(load.accepted)} accepted, {len(refused)} refused (503), promoted "
        f"after {promoted_at - killed_at:.2f} s, last refusal {last - killed_at:.2f} s after"
    )
