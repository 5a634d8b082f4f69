"""A real local Redis Cluster for benchmarks and tests: ``masters`` masters (3) with
``replicas`` replicas each (1), AOF with ``appendfsync`` (``always``), on free ports
in a folder of its own.

Each node is an :class:`api.redis_server.RedisServer` started with cluster mode on;
``redis-cli --cluster create`` assigns the 16384 slots evenly (one run per master) and
the replicas. :class:`LocalCluster` raises :class:`ClusterUnavailable` when
``redis-server`` or ``redis-cli`` is missing, so a test can skip with the reason.
``courier bench e2e --cluster`` and ``tests/test_cluster.py`` start it.
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

from api.redis_server import RedisNotFound, RedisServer


class ClusterUnavailable(RuntimeError):
    pass


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cluster_port(taken: set[int]) -> int:
    """A free port whose cluster bus port (+10000) is free too; both below 65536."""
    for _ in range(200):
        port = random.randrange(20000, 50000)
        if port not in taken and _free(port) and _free(port + 10000):
            return port
    raise ClusterUnavailable("no free port pair for a cluster node")


def _cluster_info(client: redis.Redis) -> dict[str, str]:
    info = client.execute_command("CLUSTER INFO")
    if isinstance(info, dict):  # redis-py parses it already
        return {str(k): str(v) for k, v in info.items()}
    text = info.decode() if isinstance(info, bytes) else str(info)
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)


class LocalCluster:
    """Start and stop ``masters * (1 + replicas)`` cluster-mode redis-servers and join
    them."""

    def __init__(
        self,
        data_dir: str | Path,
        *,
        masters: int = 3,
        replicas: int = 1,
        appendfsync: str = "always",
        node_timeout_ms: int = 2000,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.masters = masters
        self.replicas = replicas
        self.appendfsync = appendfsync
        self.node_timeout_ms = node_timeout_ms
        self.nodes: list[RedisServer] = []

    @property
    def ports(self) -> list[int]:
        return [n.port for n in self.nodes]

    def node(self, port: int) -> RedisServer:
        return next(n for n in self.nodes if n.port == port)

    def roles(self) -> dict[int, str]:
        """port -> ``master`` or ``slave`` (ROLE) of every node that answers."""
        out = {}
        for n in self.nodes:
            if n.proc is None or n.proc.poll() is not None:
                continue
            client = redis.Redis(port=n.port, socket_connect_timeout=0.5, socket_timeout=2)
            try:
                out[n.port] = str(client.execute_command("ROLE")[0], "ascii")
            except redis.RedisError:
                continue
            finally:
                client.close()
        return out

    @property
    def master_ports(self) -> list[int]:
        """The ports of the nodes that are masters now (after a failover too)."""
        return sorted(p for p, role in self.roles().items() if role == "master")

    @property
    def url(self) -> str:
        """The URL Courier is pointed at (any one node; the client discovers the rest)."""
        return f"redis+cluster://127.0.0.1:{self.ports[0]}"

    def start(self, timeout: float = 40.0) -> LocalCluster:
        cli = shutil.which("redis-cli")
        if cli is None:
            raise ClusterUnavailable("redis-cli is not on PATH")
        try:
            for i in range(self.masters * (1 + self.replicas)):
                self.nodes.append(self._start_node(self.data_dir / f"node{i}"))
        except RedisNotFound as e:
            self.stop()
            raise ClusterUnavailable(str(e)) from None
        except BaseException:
            self.stop()
            raise
        try:
            if self.masters >= 3:
                subprocess.run(
                    [
                        cli,
                        "--cluster",
                        "create",
                        *(f"127.0.0.1:{p}" for p in self.ports),
                        "--cluster-replicas",
                        str(self.replicas),
                        "--cluster-yes",
                    ],
                    check=True,
                    capture_output=True,
                    timeout=timeout,
                )
            else:  # redis-cli creates clusters of 3 masters or more
                self._join_by_hand(timeout)
            self._wait_ok(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _join_by_hand(self, timeout: float) -> None:
        """Slots split as redis-cli splits them, the nodes met, each master's replicas
        (the nodes after the masters, in turn) set to follow it."""
        clients = [redis.Redis(port=p, socket_timeout=5) for p in self.ports]
        try:
            per = 16384 / self.masters
            for i in range(self.masters):
                first = round(i * per)
                last = 16383 if i == self.masters - 1 else round(i * per + per - 1)
                clients[i].execute_command("CLUSTER ADDSLOTSRANGE", first, last)
            for c in clients[1:]:
                c.execute_command("CLUSTER MEET", "127.0.0.1", self.ports[0])
            ids = [str(c.execute_command("CLUSTER MYID"), "ascii") for c in clients]
            deadline = time.monotonic() + timeout
            for k, c in enumerate(clients[self.masters :]):
                master = ids[k % self.masters]
                while True:  # the replica must know its master first
                    try:
                        c.execute_command("CLUSTER REPLICATE", master)
                        break
                    except redis.ResponseError:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.05)
        finally:
            for c in clients:
                c.close()

    def _start_node(self, d: Path, tries: int = 3) -> RedisServer:
        """One cluster-mode node; another port pair if its ports were taken meanwhile."""
        for attempt in range(tries):
            node = RedisServer(
                d,
                port=cluster_port(set(self.ports)),
                extra=[
                    "--cluster-enabled", "yes",
                    "--cluster-config-file", str((d / "nodes.conf").resolve()),
                    "--cluster-node-timeout", str(self.node_timeout_ms),
                    # a failed master stops its own slots only (docs/operations.md)
                    "--cluster-require-full-coverage", "no",
                    "--appendonly", "yes",
                    "--appendfsync", self.appendfsync,
                ],
            )  # fmt: skip
            try:
                return node.start()
            except RuntimeError:  # exited at once: most likely a port taken since
                node.kill()
                if attempt == tries - 1:
                    raise
        raise AssertionError("unreachable")

    def _wait_ok(self, timeout: float) -> None:
        """Until every node says cluster_state:ok and knows every node, and every
        replica's link to its master is up."""
        deadline = time.monotonic() + timeout
        total = str(len(self.nodes))
        for port in self.ports:
            client = redis.Redis(port=port, socket_connect_timeout=0.5)
            try:
                while True:
                    fields = _cluster_info(client)
                    repl = client.info("replication")
                    linked = repl.get("role") == "master" or repl.get("master_link_status") == "up"
                    if (
                        fields.get("cluster_state") == "ok"
                        and fields.get("cluster_known_nodes") == total
                        and linked
                    ):
                        break
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"cluster not ok on port {port}: {fields!r}")
                    time.sleep(0.05)
            finally:
                client.close()

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()  # nothing to keep

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
