"""Where each partition lives on a Redis Cluster, and moving partitions between masters
(``courier cluster status|move|rebalance``).

A partition is one slot (its hash tag, delivery/keys.py), so moving a partition is
moving one slot, the way Redis Cluster moves slots: the target ``IMPORTING``, the
source ``MIGRATING``, the slot's keys sent over with ``MIGRATE`` in batches, then the
slot given to the target on every master (``SETSLOT NODE``). While it moves, scripts
on the partition are refused (delivery/redis_clients.py: an ASK for a script is a
TRYAGAIN, a 503 with Retry-After for a producer, a retry for the consumers); other
commands follow ASK; once it has moved, MOVED sends everything to the target, which
holds every key. Nothing is lost and no script ever sees half a partition.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import redis

from .keys import Keyspace, tag_slot
from .redis_clients import node_url

log = logging.getLogger(__name__)

MIGRATE_BATCH = 100
"""Keys per MIGRATE."""
MIGRATE_TIMEOUT_MS = 10_000


@dataclass(frozen=True)
class Master:
    id: str
    address: str  # host:port
    slots: frozenset[int]


@dataclass(frozen=True)
class Place:
    """One partition: its hash tag and slot, the master serving it and its keys there."""

    partition: int
    tag: str
    slot: int
    master: str  # host:port
    keys: int


def masters(seed: redis.Redis) -> list[Master]:
    """The cluster's masters (CLUSTER NODES of the seed, as redis-py parses it), those
    that failed left out; a master without slots (just added) is one too."""
    out = []
    nodes: dict[str, dict[str, object]] = seed.execute_command("CLUSTER NODES")
    for address, node in nodes.items():
        flags = str(node["flags"])
        if "master" not in flags or "fail" in flags:
            continue
        slots: set[int] = set()
        for rng in node.get("slots", []) or []:  # type: ignore[attr-defined]
            lo, hi = (list(rng) * 2)[:2]
            slots.update(range(int(lo), int(hi) + 1))
        out.append(Master(str(node["node_id"]), address, frozenset(slots)))
    return sorted(out, key=lambda m: m.address)


def _node(seed_url: str, address: str) -> redis.Redis:
    host, _, port = address.rpartition(":")
    return redis.Redis.from_url(node_url(seed_url, host, int(port)), socket_timeout=30)


def status(seed_url: str, keyspace: Keyspace) -> list[Place]:
    """Every partition with its slot, its master and the keys it has there."""
    seed = redis.Redis.from_url(seed_url)
    try:
        ms = masters(seed)
    finally:
        seed.close()
    places = []
    for p in range(keyspace.partitions):
        tag = keyspace.part(p).split("{", 1)[1].split("}", 1)[0]
        slot = tag_slot(tag)
        owner = next((m for m in ms if slot in m.slots), None)
        keys = 0
        if owner is not None:
            node = _node(seed_url, owner.address)
            try:
                keys = int(node.execute_command("CLUSTER COUNTKEYSINSLOT", slot))
            finally:
                node.close()
        places.append(Place(p, tag, slot, owner.address if owner else "-", keys))
    return places


def move(
    seed_url: str,
    keyspace: Keyspace,
    partition: int,
    to: str,
    *,
    batch: int = MIGRATE_BATCH,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Move one partition's slot to the master at ``to`` (host:port); returns the keys
    moved (0: it was there already)."""
    place = status(seed_url, keyspace)[partition]
    seed = redis.Redis.from_url(seed_url)
    try:
        ms = {m.address: m for m in masters(seed)}
    finally:
        seed.close()
    if to not in ms:
        raise ValueError(f"{to} is not a master of this cluster ({', '.join(sorted(ms))})")
    if place.master == to:
        return 0
    src, dst = ms[place.master], ms[to]
    slot = place.slot
    source, target = _node(seed_url, src.address), _node(seed_url, dst.address)
    moved = 0
    try:
        target.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", src.id)
        source.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", dst.id)
        host, _, port = dst.address.rpartition(":")
        while True:
            keys = source.execute_command("CLUSTER GETKEYSINSLOT", slot, batch)
            if not keys:
                break
            # REPLACE: a MIGRATE that timed out may have left its keys on both sides (a key
            # of an importing slot exists on the target only if a migration sent it), and
            # the same command run again must be able to finish the move
            source.execute_command(
                "MIGRATE", host, int(port), "", 0, MIGRATE_TIMEOUT_MS, "REPLACE", "KEYS", *keys
            )
            moved += len(keys)
            if progress is not None:
                progress(moved)
        # the target first: from now on MOVED from the source sends clients there
        target.execute_command("CLUSTER SETSLOT", slot, "NODE", dst.id)
        source.execute_command("CLUSTER SETSLOT", slot, "NODE", dst.id)
        for m in ms.values():
            if m.address not in (src.address, dst.address):
                other = _node(seed_url, m.address)
                try:
                    other.execute_command("CLUSTER SETSLOT", slot, "NODE", dst.id)
                finally:
                    other.close()
    finally:
        source.close()
        target.close()
    log.info(
        "partition %d (slot %d) moved %s -> %s: %d keys", partition, slot, src.address, to, moved
    )
    return moved


def plan_rebalance(places: list[Place], addresses: list[str]) -> list[tuple[int, str, str]]:
    """(partition, from, to) moves that leave every master with the same number of
    partitions, give or take one: from the fullest to the emptiest, fewest first."""
    held: dict[str, list[int]] = {a: [] for a in addresses}
    for p in places:
        held.setdefault(p.master, []).append(p.partition)
    moves: list[tuple[int, str, str]] = []
    while True:
        full = max(held, key=lambda a: (len(held[a]), a))
        empty = min(held, key=lambda a: (len(held[a]), a))
        if len(held[full]) - len(held[empty]) <= 1:
            return moves
        part = held[full].pop()
        held[empty].append(part)
        moves.append((part, full, empty))


def rebalance(seed_url: str, keyspace: Keyspace) -> list[tuple[int, str, str]]:
    """Move partitions, one at a time, until every master holds as many (+-1)."""
    seed = redis.Redis.from_url(seed_url)
    try:
        addresses = [m.address for m in masters(seed)]
    finally:
        seed.close()
    moves = plan_rebalance(status(seed_url, keyspace), addresses)
    for part, _src, dst in moves:
        move(seed_url, keyspace, part, dst)
    return moves
