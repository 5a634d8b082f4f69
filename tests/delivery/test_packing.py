"""hiredis packs the edge's commands: the same bytes as redis-py, and redis-py's own
packing where hiredis cannot (a command name with a space, a memoryview)."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.connection import Connection, UnixDomainSocketConnection

from api.runtime import redis_client
from delivery.keys import Keyspace
from delivery.packing import PackedConnection, use_packed
from delivery.producer import Limits, Producer
from delivery.store import Store, Timing

COMMANDS: list[tuple[object, ...]] = [
    ("EVALSHA", "a" * 40, 1, "courier:{p3}", *[f"m{i:016d}" for i in range(20)], 1234567, 0.5),
    ("SET", "k", "é ünïcode", "PX", 10),
    ("HSET", b"h", b"\x00\xff binary", -3, 1e20),
    ("CONFIG GET", "maxmemory"),  # redis-py splits it in two
    ("SET", "k", memoryview(b"view")),  # hiredis takes no memoryview
]


def test_the_same_bytes_as_redis_py() -> None:
    packed, plain = PackedConnection(), Connection()
    for cmd in COMMANDS:
        assert b"".join(packed.pack_command(*cmd)) == b"".join(plain.pack_command(*cmd)), cmd
    assert b"".join(packed.pack_commands(COMMANDS)) == b"".join(plain.pack_commands(COMMANDS))


def test_another_encoding_is_packed_by_redis_py() -> None:
    packed = PackedConnection(encoding="latin-1")
    assert packed.pack_command("SET", "k", "é") == Connection(encoding="latin-1").pack_command(
        "SET", "k", "é"
    )


def test_only_a_tcp_pool_changes_class() -> None:
    tcp = aioredis.ConnectionPool.from_url("redis://localhost:1/0")
    unix = aioredis.ConnectionPool.from_url("unix:///tmp/nothing.sock")
    assert use_packed(tcp).connection_class is PackedConnection
    assert use_packed(unix).connection_class is UnixDomainSocketConnection


async def test_the_edge_client_runs_commands_scripts_and_pipelines(redis_url: str) -> None:
    client = redis_client(redis_url)
    keyspace = Keyspace(prefix="tpack", partitions=2)
    try:
        assert client.connection_pool.connection_class is PackedConnection
        assert await client.config_get("maxmemory-policy")  # "CONFIG GET", split
        await client.set("tpack:k", memoryview(b"\x00view"))
        assert await client.get("tpack:k") == b"\x00view"
        pipe = client.pipeline(transaction=False)
        for i in range(50):
            pipe.hset("tpack:h", f"f{i}", "é" * i)
        pipe.hlen("tpack:h")
        assert (await pipe.execute())[-1] == 50
        # a message's whole life through the scripts, on the packed connections
        producer = Producer(client, keyspace=keyspace, limits=Limits())
        store = Store(client, keyspace=keyspace, timing=Timing())
        accepted = (await producer.submit_many([{"user_id": "ü", "payload": {"x": "é"}}]))[0][0]
        message = await store.get(accepted.id)
        assert (message.user_id, message.status) == ("ü", "queued")
    finally:
        await client.delete("tpack:k", "tpack:h")
        async for key in client.scan_iter(match=keyspace.pattern(), count=1000):
            await client.delete(key)
        await client.aclose()
