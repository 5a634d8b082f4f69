"""A master of a real Redis Cluster (3 masters, 3 replicas, AOF always) SIGKILLed under
load, with real `courier serve` processes and WebSocket clients.

What a user sees: every accepted message is delivered; a refusal is a JSON 503 with
`Retry-After`, only for the partitions of the dead master and only until its replica
is promoted; no WebSocket is closed; the edges and the consumers recover by themselves.
Skipped, with the reason, when redis-server or redis-cli is missing.
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
from tests.processes import SECRET, Proc, serve_env
from tests.support import spread_users

pytestmark = pytest.mark.slow

PARTITIONS = 6


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    try:
        c = LocalCluster(tmp_path_factory.mktemp("failover")).start()
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
        Proc(name, serve_env(name, cluster.url, ks, tmp_path), tmp_path, *args)
        for name, args in (("serve", ()), ("edge", ("--no-consumers",)))
    ]
    try:
        for p in procs:
            await p.ready()
        yield ks, procs
    finally:
        for p in procs:
            await p.stop()


async def test_a_master_killed_under_load_refuses_only_its_partitions_until_promotion(
    cluster: LocalCluster, edges: tuple[Keyspace, list[Proc]]
) -> None:
    ks, procs = edges
    seed = cluster.ports[0]  # the URL's node stays up: new processes can start
    owners = slot_owners(seed)
    part_master = {
        p: owner_of(int(redis.Redis(port=seed).cluster("KEYSLOT", ks.part(p))), owners)
        for p in range(PARTITIONS)
    }
    victim = next(m for m in cluster.master_ports if m != seed)
    doomed = {p for p, m in part_master.items() if m == victim}
    assert len(doomed) == 2  # 6 partitions, 3 masters: two each
    users = spread_users(ks, per_partition=2)
    devices = []
    for i, u in enumerate(users):
        ws = await connect(f"{procs[i % 2].ws_url}?token={token(u)}", open_timeout=5)
        assert orjson.loads(await ws.recv())["type"] == "connected"
        devices.append(Device(u, ws))
    readers = [asyncio.create_task(d.run()) for d in devices]
    answers: list[Answer] = []
    stop = asyncio.Event()
    service = {"Authorization": f"Bearer {token('backend', 'service')}"}

    async def produce(k: int) -> None:
        async with httpx.AsyncClient(base_url=procs[k % 2].url, timeout=10) as http:
            n = k
            while not stop.is_set():
                user = users[n % len(users)]
                n += 4
                r = await http.post(
                    "/v1/messages", json={"user_id": user, "payload": {"n": n}}, headers=service
                )
                answers.append(
                    Answer(
                        time.monotonic(),
                        user,
                        r.status_code,
                        r.json(),
                        r.headers.get("retry-after"),
                    )
                )
                await asyncio.sleep(0.01)

    producers = [asyncio.create_task(produce(k)) for k in range(4)]
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
        stop.set()
        await asyncio.gather(*producers)

    accepted = {a.body["id"]: a.user for a in answers if a.status == 202}
    refused = [a for a in answers if a.status != 202]
    for a in refused:  # a JSON 503 with Retry-After, for the dead master's partitions
        assert a.status == 503, (a.status, a.body)
        assert a.body["error"]["code"] == "redis_unavailable" and a.retry_after, a
        assert ks.partition_of(a.user) in doomed, (a, doomed)
        assert killed_at <= a.at <= promoted_at + 2.0, (a.at - killed_at, promoted_at - killed_at)
    during = [a for a in answers if killed_at <= a.at <= promoted_at]
    others = [a for a in during if ks.partition_of(a.user) not in doomed]
    assert others and all(a.status == 202 for a in others)  # the other masters served on
    after = [a for a in answers if a.at > promoted_at + 2.0]
    assert {ks.partition_of(a.user) for a in after if a.status == 202} == set(range(PARTITIONS))

    deadline = time.monotonic() + 30
    while True:  # every accepted message reaches its user (0 lost)
        got = {mid for d in devices for mid in d.got}
        missing = set(accepted) - got
        if not missing or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    lost_in = sorted({ks.partition_of(accepted[m]) for m in missing})
    views = []
    async with httpx.AsyncClient(base_url=procs[0].url, timeout=10) as http:
        for mid in sorted(missing)[:3]:
            r = await http.get(
                f"/v1/messages/{mid}", headers={"Authorization": f"Bearer {token('ops', 'admin')}"}
            )
            views.append(r.text[:600])
    assert not missing, (
        f"{len(missing)} of {len(accepted)} accepted messages never arrived "
        f"(partitions {lost_in}, the dead master's {sorted(doomed)})\n" + "\n".join(views)
    )
    assert [d.close_code for d in devices] == [None] * len(devices)  # no socket closed
    last = max((a.at for a in refused), default=killed_at)
    print(  # the figures docs/operations.md quotes (pytest -s)
        f"failover: {len(accepted)} accepted, {len(refused)} refused (503), promoted after "
        f"{promoted_at - killed_at:.2f} s, last refusal {last - killed_at:.2f} s after the kill"
    )
    for d in devices:
        await d.ws.close()
    for r in readers:
        with contextlib.suppress(Exception):
            await r
    for p in procs:
        assert p.proc.poll() is None, p.log_text()
