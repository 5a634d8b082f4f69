"""Read-only questions operators ask: one message with its timeline, a user's messages
and statistics, the dead letters, and the state of the whole deployment.

Nothing here writes to Redis. Every answer is plain JSON-ready data (ISO times,
ints, strings) so the HTTP API, the CLI and the metrics collector share it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from . import clock
from .exceptions import NotFound, ValidationError
from .fields import ConnField, DeadLetterField, MessageField
from .keys import GROUP, PRIORITIES, Keyspace, partition_from_id
from .members import parse_conn_member, parse_node_member
from .message import Message, iso_ms
from .status import Status
from .text import text
from .user_figures import message_figures

MAX_PAGE = 500
_SCAN_CHUNK = 200
F = MessageField
_SUMMARY = (
    *(F.STATUS, F.PRIORITY, F.CREATED_AT, F.EXPIRES_AT, F.ATTEMPTS, F.MAX_ATTEMPTS),
    *(F.DELIVERED_AT, F.LAST_ERROR, F.TOPIC, F.COLLAPSE_KEY),
)
_DEAD = (
    *(F.STATUS, F.PRIORITY, F.CREATED_AT, F.ATTEMPTS, F.MAX_ATTEMPTS, F.LAST_ERROR),
    F.DEAD_LETTER,
)
_MS_FIELDS = ("due", "until")  # timeline details that are epoch milliseconds
_DLQ_ID = DeadLetterField.ID.encode()


def _int(v: Any, default: int = 0) -> int:
    return default if v is None else int(float(text(v)))


def _opt_iso(v: Any) -> str | None:
    return None if v is None else iso_ms(_int(v))


@dataclass(frozen=True)
class Page:
    """One page of a listing and the opaque cursor of the next one (None: the end)."""

    items: list[dict[str, Any]]
    next_cursor: str | None


def message_json(msg: Message, extra: dict[bytes, Any]) -> dict[str, Any]:
    """A message as operators see it: the stored message plus ttl, delivery time and
    the dead-letter entry, with epoch-ms timeline details as ISO times."""
    out = msg.to_json()
    tl, da, dl = (extra.get(k.encode()) for k in (F.TTL, F.DELIVERED_AT, F.DEAD_LETTER))
    out["recipient"] = msg.user_id
    if tl is None:  # never replayed: the ttl it was given is expires - created
        ttl_ms = _int(extra.get(F.EXPIRES_AT.encode())) - _int(extra.get(F.CREATED_AT.encode()))
    else:
        ttl_ms = _int(tl)
    out["ttl_seconds"] = ttl_ms // 1000
    out["delivered_at"] = _opt_iso(da)
    out["dead_letter_entry"] = None if dl is None else text(dl)
    for event in out["timeline"]:
        for key in _MS_FIELDS:
            if isinstance(event.get(key), int | float):
                event[key] = iso_ms(int(event[key]))
    return out


class Queries:
    """Read-only views over one deployment's keys."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        keyspace: Keyspace,
        heartbeat_timeout_ms: int = 60_000,
        consumer_alive_ms: int = 30_000,
    ) -> None:
        self.redis = client
        self.keyspace = keyspace
        self.heartbeat_timeout_ms = heartbeat_timeout_ms
        self.consumer_alive_ms = consumer_alive_ms

    # -- one message ----------------------------------------------------------------------
    async def message(self, message_id: str) -> dict[str, Any]:
        try:
            key = self.keyspace.msg(message_id)
        except ValueError:
            raise NotFound(f"no message {message_id!r}") from None
        # the client has no decode_responses: bytes (redis-py types either)
        h: dict[bytes, Any] = await self.redis.hgetall(key)  # type: ignore[assignment]
        if not h:
            raise NotFound(f"no message {message_id!r} (unknown, or its retention ended)")
        return message_json(Message.from_hash(message_id, h), h)

    # -- one user ---------------------------------------------------------------------------
    async def user_messages(
        self,
        user_id: str,
        *,
        status: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        """A user's messages, newest first, optionally only one status and a window of
        creation times (inclusive). Messages whose retention ended are left out."""
        if status is not None and status not in Status.__members__.values():
            names = ", ".join(s.value for s in Status)
            raise ValidationError(f"status must be one of {names}")
        limit = max(1, min(limit, MAX_PAGE))
        key = self.keyspace.user(user_id, "user_msgs")
        top: float | str = "+inf" if until_ms is None else until_ms
        after: tuple[int, str] | None = None
        if cursor:
            after = _decode_cursor(cursor)
            top = after[0] if until_ms is None else min(after[0], until_ms)
        bottom: float | str = "-inf" if since_ms is None else since_ms
        items: list[dict[str, Any]] = []
        last: tuple[int, str] | None = None
        offset = 0
        scanned = 0
        while len(items) < limit and scanned < limit * 50 + 1000:
            chunk: Any = await self.redis.zrange(
                key,
                top,
                bottom,
                byscore=True,
                desc=True,
                offset=offset,
                num=_SCAN_CHUNK,
                withscores=True,
            )
            if not chunk:
                return Page(items, None)
            offset += len(chunk)
            scanned += len(chunk)
            rows = [(text(m), int(score)) for m, score in chunk]
            if after is not None:  # same score as the cursor: skip what was returned
                rows = [(m, sc) for m, sc in rows if sc < after[0] or m < after[1]]
            pipe = self.redis.pipeline(transaction=False)
            for mid, _ in rows:
                pipe.hmget(self.keyspace.msg(mid), *_SUMMARY)
            for (mid, score), values in zip(rows, await pipe.execute(), strict=True):
                last = (score, mid)
                row = _summary(mid, values)
                if row is None or (status is not None and row["status"] != status):
                    continue
                items.append(row)
                if len(items) == limit:
                    break
            if len(chunk) < _SCAN_CHUNK and len(items) < limit:
                return Page(items, None)
        return Page(items, None if last is None else _encode_cursor(*last))

    async def user_stats(self, user_id: str) -> dict[str, Any]:
        """Counts by status, delivery rate, time to ack from when each message was due
        (computed from the messages the user's index still names, see
        :mod:`delivery.user_figures`) and devices online."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.zrangebyscore(self.keyspace.user(user_id, "conns"), "-inf", "+inf", withscores=True)
        pipe.time()
        conns, server_time = await pipe.execute()
        now = clock.time_ms(server_time)
        live = [
            (text(m), int(score))
            for m, score in conns
            if int(score) >= now - self.heartbeat_timeout_ms
        ]
        devices = await self._devices(user_id, live)
        figures = await message_figures(self.redis, self.keyspace, user_id)
        return {
            "user_id": user_id,
            **figures,
            "online": {"devices": len(devices), "connections": devices},
        }

    async def connections(self, user_id: str) -> list[dict[str, Any]]:
        """The user's live connections: device, address, node, connected since, last
        seen (presence's connection hashes)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.zrangebyscore(self.keyspace.user(user_id, "conns"), "-inf", "+inf", withscores=True)
        pipe.time()
        conns, now = await pipe.execute()
        cutoff = clock.time_ms(now) - self.heartbeat_timeout_ms
        live = [(text(m), int(score)) for m, score in conns if int(score) >= cutoff]
        return await self._devices(user_id, live)

    async def _devices(self, user_id: str, live: list[tuple[str, int]]) -> list[dict[str, Any]]:
        """Details of the user's live connections (``connect.lua`` keeps them)."""
        if not live:
            return []
        targets = [(parse_conn_member(member), seen) for member, seen in live]
        pipe = self.redis.pipeline(transaction=False)
        for (_, conn), _ in targets:
            pipe.hgetall(self.keyspace.user(user_id, "conn", conn=conn))
        out = []
        for ((node, conn), seen), h in zip(targets, await pipe.execute(), strict=True):
            d = {text(k): text(v) for k, v in h.items()}
            out.append(
                {
                    "conn_id": conn,
                    "node_id": node,
                    "device": d.get(ConnField.DEVICE) or None,
                    "address": d.get(ConnField.ADDRESS) or None,
                    "connected_at": _opt_iso(d.get(ConnField.CONNECTED_AT)),
                    "last_seen": iso_ms(seen),
                }
            )
        return out

    # -- dead letters ------------------------------------------------------------------------
    async def dead_letters(self, *, limit: int = 50, cursor: str | None = None) -> Page:
        """Dead letters of every partition, newest first, with the reason, the last
        error and the message's state (``message_expired`` when its hash is gone)."""
        limit = max(1, min(limit, MAX_PAGE))
        pos = _decode_dlq_cursor(cursor, self.keyspace.partitions) if cursor else None
        pipe = self.redis.pipeline(transaction=False)
        for p in range(self.keyspace.partitions):
            top = "+"
            if pos is not None:
                top = pos[0] if p < pos[1] else f"({pos[0]}"
            pipe.xrevrange(self.keyspace.key(p, "dlq"), top, "-", count=limit + 1)
        merged: list[tuple[tuple[int, int, int], int, str, dict[str, str]]] = []
        for p, entries in enumerate(await pipe.execute()):
            for entry_id, fields in entries:
                eid = text(entry_id)
                ms, _, seq = eid.partition("-")
                f = {text(k): text(v) for k, v in fields.items()}
                merged.append(((int(ms), int(seq), p), p, eid, f))
        merged.sort(key=lambda x: x[0], reverse=True)
        page = merged[:limit]
        pipe = self.redis.pipeline(transaction=False)
        for _, _, _, f in page:
            pipe.hmget(self.keyspace.msg(f[DeadLetterField.ID]), *_DEAD)
        items = [
            _dead_letter(p, eid, f, values)
            for (_, p, eid, f), values in zip(page, await pipe.execute(), strict=True)
        ]
        more = len(merged) > limit
        nxt = _encode_dlq_cursor(page[-1][2], page[-1][1]) if more and page else None
        return Page(items, nxt)

    async def dead_letter_entries(self, partition: int) -> list[tuple[str, str]]:
        """Every (entry id, message id) of one partition's dead-letter stream, oldest
        first, read in chunks."""
        key = self.keyspace.key(partition, "dlq")
        out: list[tuple[str, str]] = []
        start = "-"
        while True:
            chunk: Any = await self.redis.xrange(key, start, "+", count=1000)
            for entry_id, fields in chunk:
                out.append((text(entry_id), text(fields.get(_DLQ_ID, b""))))
            if len(chunk) < 1000:
                return out
            start = f"({text(chunk[-1][0])}"

    # -- the whole deployment ---------------------------------------------------------------
    async def stats(self) -> dict[str, Any]:
        """Depth, pending and lag of every stream, the waiting sets, dead letters,
        nodes with their connections and users, and the consumers of the group."""
        ks = self.keyspace
        pipe = self.redis.pipeline(transaction=False)
        pipe.time()
        pipe.zrange(ks.nodes, 0, -1, withscores=True)
        pipe.zrange(ks.consumer_beats, 0, -1, withscores=True)
        for p in range(ks.partitions):
            for prio in PRIORITIES:
                stream = ks.stream(p, prio)
                pipe.xlen(stream)
                pipe.xinfo_groups(stream)
                pipe.xinfo_consumers(stream, GROUP)
            pipe.xinfo_groups(ks.drained(p))
            for name in ("delayed", "parkx"):
                pipe.zcard(ks.key(p, name))
            pipe.xlen(ks.key(p, "dlq"))
            pipe.hgetall(ks.key(p, "reached"))
        res = iter(await pipe.execute(raise_on_error=False))
        now = clock.time_ms(_ok(next(res), (0, 0)))
        node_rows = _ok(next(res), [])
        beats = {text(name): int(ms) for name, ms in _ok(next(res), [])}
        streams = {prio: {"length": 0, "pending": 0, "lag": 0} for prio in PRIORITIES}
        partitions = []
        consumers: dict[str, dict[str, int]] = {}
        totals = {"delayed": 0, "inflight": 0, "parked": 0, "dead_letters": 0}
        reached = {st.value: 0 for st in Status}
        for p in range(ks.partitions):
            part: dict[str, Any] = {"partition": p, "streams": {}}
            for prio in PRIORITIES:
                length = int(_ok(next(res), 0))
                group = _group(_ok(next(res), []))
                pending = int(group.get("pending", 0)) if group else 0
                lag = group.get("lag") if group else length
                if lag is None:  # undetermined: entries are deleted once dispatched
                    lag = max(length - pending, 0)
                row = {"length": length, "pending": pending, "lag": int(lag)}
                part["streams"][prio] = row
                for k, v in row.items():
                    streams[prio][k] += v
                for c in _ok(next(res), []):
                    name = text(c["name"])
                    seen = consumers.setdefault(name, {"pending": 0, "idle_ms": c["idle"]})
                    seen["pending"] += int(c["pending"])
                    seen["idle_ms"] = min(seen["idle_ms"], int(c["idle"]))
            # sent and waiting for an ack: the group's pending entries (in the priority
            # streams, also the few read and not yet dispatched)
            drained = _group(_ok(next(res), []))
            part["inflight"] = sum(r["pending"] for r in part["streams"].values()) + (
                int(drained.get("pending", 0)) if drained else 0
            )
            for name in ("delayed", "parked", "dead_letters"):
                part[name] = int(_ok(next(res), 0))
            for name in totals:
                totals[name] += part[name]
            for st, n in _ok(next(res), {}).items():
                reached[text(st)] = reached.get(text(st), 0) + int(n)
            partitions.append(part)
        nodes = await self._nodes(node_rows, now)
        users: set[str] = set()
        for n in nodes:
            users |= n.pop("_users")
        rows = self._consumers(consumers, beats, now)
        enqueued = reached.pop("enqueued", 0)
        return {
            "time": iso_ms(now),
            "streams": streams,
            **totals,
            "reached": reached,  # messages that reached each status (since the start)
            "enqueued": enqueued,  # messages enqueued (since the start), by any producer
            "partitions": partitions,
            "nodes": nodes,
            "nodes_alive": sum(1 for n in nodes if n["alive"]),
            "connections": sum(n["connections"] for n in nodes),
            "online_users": len(users),
            "consumers": rows,
            "consumers_alive": sum(1 for c in rows if c["alive"]),
        }

    def _consumers(
        self, group: dict[str, dict[str, int]], beats: dict[str, int], now: int
    ) -> list[dict[str, Any]]:
        """The group's members (pending, idle from XINFO) and the consumers processes'
        own heartbeats: alive means a beat within `consumer_alive_ms` (XINFO's idle time
        of a blocked reader grows on an idle Redis 7.0, so it cannot tell)."""
        out = []
        for name in sorted(group.keys() | beats.keys()):
            c = group.get(name, {"pending": 0, "idle_ms": None})
            beat = beats.get(name)
            out.append(
                {
                    "name": name,
                    "pending": c["pending"],
                    "idle_ms": c["idle_ms"],
                    "last_beat": None if beat is None else iso_ms(beat),
                    "alive": beat is not None and now - beat < self.consumer_alive_ms,
                }
            )
        return out

    async def _nodes(self, rows: list[Any], now: int) -> list[dict[str, Any]]:
        if not rows:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for node, _ in rows:
            pipe.smembers(self.keyspace.node_conns(text(node)))
        out = []
        for (node, seen), members in zip(rows, await pipe.execute(), strict=True):
            users = {parse_node_member(m)[0] for m in members}
            out.append(
                {
                    "node_id": text(node),
                    "last_seen": iso_ms(int(seen)),
                    "alive": int(seen) >= now - self.heartbeat_timeout_ms,
                    "connections": len(members),
                    "users": len(users),
                    "_users": users,
                }
            )
        return out


def _ok(value: Any, default: Any) -> Any:
    """A pipelined reply, or the default when the command failed (no such key/group)."""
    if isinstance(value, ResponseError | Exception):
        return default
    return value


def _group(groups: list[dict[str, Any]]) -> dict[str, Any] | None:
    for g in groups:
        if text(g["name"]) == GROUP:
            return g
    return None


def _summary(mid: str, values: list[Any]) -> dict[str, Any] | None:
    v = dict(zip(_SUMMARY, values, strict=True))
    if v[F.STATUS] is None:
        return None  # retention ended between the index read and now
    return {
        "id": mid,
        "status": text(v[F.STATUS]),
        "priority": text(v[F.PRIORITY]),
        "created_at": iso_ms(_int(v[F.CREATED_AT])),
        "expires_at": iso_ms(_int(v[F.EXPIRES_AT])),
        "attempts": _int(v[F.ATTEMPTS]),
        "max_attempts": _int(v[F.MAX_ATTEMPTS]),
        "delivered_at": _opt_iso(v[F.DELIVERED_AT]),
        "last_error": _opt(v[F.LAST_ERROR]),
        "topic": _opt(v[F.TOPIC]),
        "collapse_key": _opt(v[F.COLLAPSE_KEY]),
    }


def _opt(v: Any) -> str | None:
    return None if v is None else text(v)


def _dead_letter(
    partition: int, entry_id: str, f: dict[str, str], values: list[Any]
) -> dict[str, Any]:
    s, prio, created, attempts, max_attempts, last_error, dl = values
    gone = s is None
    return {
        "id": f.get(DeadLetterField.ID),
        "entry_id": entry_id,
        "partition": partition,
        "user_id": f.get(DeadLetterField.USER),
        "reason": f.get(DeadLetterField.REASON),
        "last_error": _opt(last_error),
        "attempts": int(f.get(DeadLetterField.ATTEMPTS) or 0) if gone else _int(attempts),
        "max_attempts": None if gone else _int(max_attempts),
        "priority": None if gone else text(prio),
        "status": "gone" if gone else text(s),
        "dead_at": iso_ms(int(entry_id.partition("-")[0])),
        "created_at": None if gone else iso_ms(_int(created)),
        "message_expired": gone,
        "current": not gone and dl is not None and text(dl) == entry_id,
    }


def _encode_cursor(score: int, member: str) -> str:
    return f"{score}.{member}"


_DIGITS = re.compile(r"[0-9]{1,19}")  # ASCII digits only ('²'.isdigit() is True)
_BAD_CURSOR = "cursor is not one this API returned"


def _number(text: str, top: int = 2**63 - 1) -> int:
    if not _DIGITS.fullmatch(text) or int(text) > top:
        raise ValidationError(_BAD_CURSOR)
    return int(text)


def _decode_cursor(cursor: str) -> tuple[int, str]:
    score, sep, member = cursor.partition(".")
    if not sep or not member:
        raise ValidationError(_BAD_CURSOR)
    _number(score)
    try:
        partition_from_id(member)
    except ValueError:
        raise ValidationError("cursor is not one this API returned") from None
    return int(score), member


def _encode_dlq_cursor(entry_id: str, partition: int) -> str:
    return f"{entry_id}.{partition}"


def _decode_dlq_cursor(cursor: str, partitions: int) -> tuple[str, int]:
    entry_id, sep, part = cursor.partition(".")
    ms, dash, seq = entry_id.partition("-")
    if not (sep and dash):
        raise ValidationError(_BAD_CURSOR)
    _number(ms), _number(seq)
    return entry_id, _number(part, partitions - 1)
