"""Every Redis key Courier writes, with its type and lifetime, in one place.

Keys are grouped by *partition*: a user belongs to partition ``crc32(user) % N``
and every key of that partition carries the hash tag ``{pK}``. A Lua script
therefore touches exactly one slot, which keeps the layout legal on Redis Cluster
(the same technique BullMQ uses: scripts receive the partition prefix and build the
per-message and per-user names from it).

The per-partition layout below is the single source of truth: the Lua prelude's
``key_*`` functions are generated from :data:`PARTITION_LAYOUT`, so Python and Lua
cannot disagree on a name.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

# name -> (suffix template after the partition prefix, type, lifetime).
# ``{user*}`` is the user id after its length in bytes (``5:alice``): where another id
# follows, user "a:b" with key "c" and user "a" with key "b:c" must not share a key.
PARTITION_LAYOUT: dict[str, tuple[str, str, str]] = {
    "stream": ("q:{priority}", "stream", "entries removed once dispatched (XACK + XTRIM)"),
    "delayed": ("delayed", "zset id->due ms", "members removed when promoted"),
    "inflight": ("inflight", "zset id->ack deadline ms", "members removed on ack/retry"),
    "parkx": ("parkx", "zset id->park expiry ms", "members removed on unpark/expiry"),
    "dlq": ("dlq", "stream", "MAXLEN ~ dlq_max_len"),
    "msg": ("m:{id}", "hash", "expires_at + retention; retention after final"),
    "idem": ("idem:{user*}:{key}", "string -> id", "message ttl + retention"),
    "collapse": ("ck:{user*}:{key}", "string -> id", "message ttl"),
    "parked": ("u:{user}:parked", "zset id->rank", "park ttl, refreshed on park"),
    "user_msgs": ("u:{user}:msgs", "zset id->created ms", "max ttl + retention (+1/16)"),
    "user_stats": ("u:{user}:stats", "hash", "like user_msgs"),
    "user_latency": ("u:{user}:lat", "list of ack latencies ms", "like user_stats"),
    "conns": ("u:{user}:conns", "zset node|conn->last seen ms", "heartbeat timeout x2"),
    "conn": ("c:{conn}", "hash", "heartbeat timeout x2"),
    "task": ("task:{user*}:{task}", "hash: owner, status, progress ...", "task ttl (7 days)"),
    "user_tasks": ("u:{user}:tasks", "zset task id->updated ms (active tasks)", "task ttl"),
}

PRIORITIES = ("high", "normal", "low")
GROUP = "couriers"


def partition_of(user_id: str, partitions: int) -> int:
    """The partition a user's keys live in (stable for a given partition count)."""
    return zlib.crc32(user_id.encode()) % partitions


@dataclass(frozen=True)
class Keyspace:
    """Builds key names for one deployment (prefix + partition count)."""

    prefix: str = "courier"
    partitions: int = 8

    # -- global keys (single-key commands only) -------------------------------------
    @property
    def nodes(self) -> str:
        """zset node id -> last heartbeat ms."""
        return f"{self.prefix}:nodes"

    @property
    def consumer_beats(self) -> str:
        """zset consumer name -> last heartbeat ms (Redis TIME), refreshed by every
        consumers process (consumers/heartbeat.py); members a day old are dropped."""
        return f"{self.prefix}:consumers"

    def node_conns(self, node: str) -> str:
        """set of 'partition|user|conn' held by one node, for the dead-node sweep."""
        return f"{self.prefix}:node:{node}:conns"

    def node_channel(self, node: str) -> str:
        """pub/sub channel that carries frames to one edge node."""
        return f"{self.prefix}:node:{node}"

    @property
    def broadcast_channel(self) -> str:
        return f"{self.prefix}:broadcast"

    def replies_channel(self, message_id: str) -> str:
        return f"{self.prefix}:reply:{message_id}"

    def cancel_channel(self, task_id: str) -> str:
        return f"{self.prefix}:cancel:{task_id}"

    @property
    def topics_channel(self) -> str:
        """pub/sub channel of live topic frames; every edge node filters locally."""
        return f"{self.prefix}:topics"

    def broadcast_report(self, broadcast_id: str) -> str:
        """hash nodes/conns: how many nodes and connections took a broadcast."""
        return f"{self.prefix}:bcast:{broadcast_id}"

    # -- partitions ------------------------------------------------------------------
    def partition_of(self, user_id: str) -> int:
        return partition_of(user_id, self.partitions)

    def part(self, partition: int) -> str:
        """The partition prefix; every per-partition key starts with it."""
        return f"{self.prefix}:{{p{partition}}}:"

    def part_of_user(self, user_id: str) -> str:
        return self.part(self.partition_of(user_id))

    def part_of_message(self, message_id: str) -> str:
        return self.part(partition_from_id(message_id))

    def key(self, partition: int, name: str, **fields: str) -> str:
        template = PARTITION_LAYOUT[name][0]
        if "{user*}" in template:
            user = fields["user"]
            template = template.replace("{user*}", f"{len(user.encode())}:{{user}}")
        return self.part(partition) + template.format(**fields)

    def stream(self, partition: int, priority: str) -> str:
        return self.key(partition, "stream", priority=priority)

    def streams(self, partition: int) -> list[str]:
        """The priority streams of a partition, highest first."""
        return [self.stream(partition, p) for p in PRIORITIES]

    def msg(self, message_id: str) -> str:
        return self.key(partition_from_id(message_id), "msg", id=message_id)

    def user(self, user_id: str, name: str, **fields: str) -> str:
        return self.key(self.partition_of(user_id), name, user=user_id, **fields)

    def pattern(self) -> str:
        """A SCAN pattern matching every key of this deployment."""
        return f"{self.prefix}:*"


def partition_from_id(message_id: str) -> int:
    """Message ids are ``<partition>-<random hex>``; see :func:`delivery.message.new_id`."""
    head, sep, _ = message_id.partition("-")
    if not sep or not head.isdigit():
        raise ValueError(f"not a Courier message id: {message_id!r}")
    return int(head)


def lua_key_functions() -> str:
    """Lua functions ``key_<name>(P, ...)`` generated from :data:`PARTITION_LAYOUT`."""
    out = []
    for name, (template, _type, _life) in PARTITION_LAYOUT.items():
        parts: list[str] = []
        args: list[str] = []
        rest = template
        while "{" in rest:
            lit, _, tail = rest.partition("{")
            field, _, rest = tail.partition("}")
            if lit:
                parts.append(repr(lit).replace('"', '\\"'))
            if field.endswith("*"):  # length-prefixed (see PARTITION_LAYOUT)
                field = field[:-1]
                parts += [f"#{field}", "':'"]
            parts.append(field)
            args.append(field)
        if rest:
            parts.append(repr(rest))
        body = " .. ".join(["P", *parts])
        out.append(f"local function key_{name}({', '.join(args)}) return {body} end")
    return "\n".join(out)
