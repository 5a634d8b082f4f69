"""Every Redis key Courier writes, with its type and lifetime, in one place.

Keys are grouped by *partition*: a user belongs to partition ``crc32(user) % N``
and every key of that partition carries the hash tag ``{pK}``. A Lua script
therefore touches exactly one slot, which keeps the layout legal on Redis Cluster
(the same technique BullMQ uses: scripts receive the partition prefix and build the
per-message and per-user names from it).

The layout below is the single source of truth: the Lua prelude's ``key_*`` functions
are generated from :data:`PARTITION_LAYOUT`, so Python and Lua cannot disagree on a
name. The fixed lifetimes and caps sit beside it; the fields of the hashes and stream
entries are in :mod:`delivery.fields`, the members of the presence sets in
:mod:`delivery.members`.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import NamedTuple

DAY_MS = 86_400_000

# -- fixed lifetimes and caps ------------------------------------------------------------
# The lifetimes that do not come from settings. Python passes them to the scripts (see
# delivery/calls.py), so both sides use these values and no other.
TASK_TTL_MS = 7 * DAY_MS
"""A task hash and its owner's active-task index live this long after the last report."""
USER_INDEX_CAP = 10_000
"""Members kept in a user's message index (``user_msgs``); the oldest are dropped (checked
on about one enqueue in 16: the index may exceed it by a few dozen meanwhile)."""
DLQ_MAX_LEN = 100_000
"""Approximate length cap of each partition's dead-letter stream (``XADD MAXLEN ~``)."""
PRESENCE_TTL_FACTOR = 2
"""Presence keys (``conns``, ``conn``) live this many heartbeat timeouts."""
RESERVE_TTL_MS = 30_000
"""A multi-call enqueue's reservations live this long if its scripts never run."""
BROADCAST_REPORT_TTL_S = 300
"""A broadcast's report (nodes and connections that took it) lives this long."""
EVENTS_MAX_LEN = 100_000
"""Default approximate length cap of each partition's events stream (``XADD MAXLEN ~``;
the setting ``COURIER_EVENTS_MAX_LEN``)."""
SIGN_IN_TTL_S = 300
"""A console sign-in code (``courier admin``) can be redeemed this long, once."""
TOTALS_STALE_MS = 60_000
"""A process's published totals (``totals``) older than this are dropped by the next
publisher: the process stopped."""


class Key(NamedTuple):
    """One key of the layout: where it is, what it holds, how long it lives."""

    template: str
    type: str
    lifetime: str


# Every per-partition key: the suffix template after the partition prefix, the type and
# the lifetime. ``{user*}`` is the user id after its length in bytes (``5:alice``): where
# another id follows, user "a:b" with key "c" and user "a" with key "b:c" must not share
# a key. Members: ``conns`` holds ``node|conn`` (see delivery/members.py).
PARTITION_LAYOUT: dict[str, Key] = {
    "stream": Key(
        "q:{priority}",
        "stream (group couriers; a sent message's pending entry is its in-flight record)",
        "entries acknowledged on ack/park/retry, trimmed below the oldest pending one",
    ),
    "drained": Key(
        "drained",
        "stream (group couriers): in-flight records of parked messages handed to a device",
        "like stream",
    ),
    "delayed": Key("delayed", "zset id->due ms", "members removed when promoted"),
    "parkx": Key("parkx", "zset id->park expiry ms", "members removed on unpark/expiry"),
    "dlq": Key("dlq", "stream", f"MAXLEN ~ DLQ_MAX_LEN ({DLQ_MAX_LEN})"),
    "reached": Key(
        "reached",
        "hash status->messages that reached it, and enqueued->messages enqueued",
        "one per partition, no TTL",
    ),
    "msg": Key("m:{id}", "hash", "expires_at + retention; retention after final"),
    "idem": Key("idem:{user*}:{key}", "string -> id", "message ttl + retention"),
    "collapse": Key("ck:{user*}:{key}", "string -> id", "message ttl"),
    "parked": Key("u:{user}:parked", "zset id->rank", "park ttl, refreshed on park"),
    "user_msgs": Key(
        "u:{user}:msgs",
        "zset id->created ms",
        f"max ttl + retention (+1/16); USER_INDEX_CAP ({USER_INDEX_CAP}) members",
    ),
    "conns": Key(
        "u:{user}:conns",
        "zset node|conn->last seen ms",
        f"heartbeat timeout x PRESENCE_TTL_FACTOR ({PRESENCE_TTL_FACTOR})",
    ),
    "conn": Key("c:{conn}", "hash", "like conns"),
    "task": Key(
        "task:{user*}:{task}",
        "hash: owner, status, progress ...",
        f"TASK_TTL_MS ({TASK_TTL_MS // DAY_MS} days)",
    ),
    "user_tasks": Key("u:{user}:tasks", "zset task id->updated ms (active tasks)", "like task"),
    "events": Key(
        "events",
        "stream (EventField): lifecycle events for producers",
        f"MAXLEN ~ COURIER_EVENTS_MAX_LEN ({EVENTS_MAX_LEN})",
    ),
    "escalate": Key(
        "escalate",
        "zset id->escalation due ms",
        "members removed when due (undelivered fired, or the message had moved on)",
    ),
    # webhook deliveries (delivery/webhook_store.py): one job per endpoint and event
    "wh_due": Key(
        "wh:due:{endpoint}",
        "zset event id->next attempt ms (lease end while sending)",
        "members removed when delivered or dead-lettered",
    ),
    "wh_jobs": Key(
        "wh:jobs:{endpoint}",
        "hash event id->body, `id|a` attempts, `id|e` last error",
        "fields removed when delivered or dead-lettered",
    ),
    "wh_counts": Key(
        "wh:counts",
        "hash `endpoint|pending`, `endpoint|dead` -> jobs",
        "fields removed with the endpoint",
    ),
    "wh_dlq": Key("wh:dlq", "stream (WebhookDeadField)", f"MAXLEN ~ DLQ_MAX_LEN ({DLQ_MAX_LEN})"),
    "reserve": Key(
        "reserve:{token}",
        "string: room for one call of a multi-call enqueue",
        f"RESERVE_TTL_MS ({RESERVE_TTL_MS // 1000} s); deleted by its call's script",
    ),
    "gate": Key("gate", "never written (see refuse_when_full in _lib.lua)", "none"),
}

# The keys outside partitions (single-key commands only), built by :class:`Keyspace`.
GLOBAL_LAYOUT: dict[str, Key] = {
    "nodes": Key("nodes", "zset node id->last heartbeat ms", "members swept when dead"),
    "node_conns": Key(
        "node:{node}:conns", "set user|conn held by one node", "deleted by the dead-node sweep"
    ),
    "broadcast_report": Key(
        "bcast:{id}",
        "hash nodes, connections",
        f"BROADCAST_REPORT_TTL_S ({BROADCAST_REPORT_TTL_S} s)",
    ),
    "webhooks": Key(
        "webhooks", "hash endpoint id->endpoint JSON (admin API)", "fields removed on delete"
    ),
    "wh_stat": Key(
        "wh:stat:{endpoint}",
        "hash: an endpoint's attempts, successes, failures, last result",
        "deleted with the endpoint",
    ),
    "sign_in": Key(
        "signin:{code}",
        "string -> admin token (console one-time link)",
        f"SIGN_IN_TTL_S ({SIGN_IN_TTL_S} s); GETDEL on use",
    ),
    "totals": Key(
        "totals",
        "hash process -> JSON of its counters (delivery/totals.py)",
        f"fields older than TOTALS_STALE_MS ({TOTALS_STALE_MS // 1000} s) dropped on publish",
    ),
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
    def global_key(self, name: str, **fields: str) -> str:
        """A key of :data:`GLOBAL_LAYOUT`."""
        return f"{self.prefix}:" + GLOBAL_LAYOUT[name].template.format(**fields)

    @property
    def nodes(self) -> str:
        """zset node id -> last heartbeat ms."""
        return self.global_key("nodes")

    @property
    def consumer_beats(self) -> str:
        """zset consumer name -> last heartbeat ms (Redis TIME), refreshed by every
        consumers process (consumers/heartbeat.py); members a day old are dropped."""
        return f"{self.prefix}:consumers"

    def node_conns(self, node: str) -> str:
        """set of ``user|conn`` held by one node, for the dead-node sweep."""
        return self.global_key("node_conns", node=node)

    def node_channel(self, node: str) -> str:
        """pub/sub channel that carries frames to one edge node."""
        return f"{self.prefix}:node:{node}"

    def control_channel(self, node: str) -> str:
        """pub/sub channel of operators' orders to one edge node (api/control.py)."""
        return f"{self.prefix}:control:{node}"

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

    @property
    def webhooks(self) -> str:
        """hash endpoint id -> endpoint JSON: the endpoints added by the admin API."""
        return self.global_key("webhooks")

    def webhook_stat(self, endpoint: str) -> str:
        """hash: one endpoint's counters and last result."""
        return self.global_key("wh_stat", endpoint=endpoint)

    def broadcast_report(self, broadcast_id: str) -> str:
        """hash nodes/connections: how many nodes and connections took a broadcast."""
        return self.global_key("broadcast_report", id=broadcast_id)

    def sign_in(self, code: str) -> str:
        """string: the admin token a console sign-in code stands for."""
        return self.global_key("sign_in", code=code)

    @property
    def totals(self) -> str:
        """hash process -> its counters' totals, for deployment-wide rates."""
        return self.global_key("totals")

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
        template = PARTITION_LAYOUT[name].template
        if "{user*}" in template:
            user = fields["user"]
            template = template.replace("{user*}", f"{len(user.encode())}:{{user}}")
        return self.part(partition) + template.format(**fields)

    def stream(self, partition: int, priority: str) -> str:
        return self.key(partition, "stream", priority=priority)

    def streams(self, partition: int) -> list[str]:
        """The priority streams of a partition, highest first."""
        return [self.stream(partition, p) for p in PRIORITIES]

    def drained(self, partition: int) -> str:
        """The stream of a partition's parked messages handed to a device (never read
        by the readers: ``unpark.lua`` reads each entry as it adds it)."""
        return self.key(partition, "drained")

    def group_streams(self, partition: int) -> list[str]:
        """Every stream of a partition with the consumer group: the priority streams,
        then the drained one."""
        return [*self.streams(partition), self.drained(partition)]

    def events(self, partition: int) -> str:
        """The partition's lifecycle events stream (delivery/events.py)."""
        return self.key(partition, "events")

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
