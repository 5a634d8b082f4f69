"""A user's figures, computed on read from the user's message index: how many of the
messages still kept are in each status, and their time to ack: from when each was due
(its creation, or the due time a delay or ``deliver_at`` asked for: a message asked for
tomorrow and acked a second after it came is one second, not a day) to its ack.

Nothing is counted per message for this (an admin asks rarely; every delivery would
pay for counters): the index (``user_msgs``, at most ``USER_INDEX_CAP`` ids) names
the messages, and each message's hash holds its status, creation and ack time, and
for a message enqueued with a due time, its first event (``scheduled``, with ``due``).
Messages whose retention ended have left their hash and are not counted.
"""

from __future__ import annotations

from typing import Any

import orjson
import redis.asyncio as aioredis

from .fields import MessageField
from .keys import Keyspace
from .percentiles import percentile
from .status import Status
from .text import text

CHUNK = 1000  # message hashes read per round trip
FIRST_EVENT = f"{MessageField.EVENT}1"  # absent for a message queued at once
_FIELDS = (
    MessageField.STATUS,
    MessageField.CREATED_AT,
    MessageField.DELIVERED_AT,
    FIRST_EVENT,
)


def due_ms(created: bytes | str, first_event: bytes | str | None) -> int:
    """When a message was due: its creation, or the due time of its first event when
    it was enqueued ``scheduled`` (a delay or ``deliver_at``)."""
    if first_event is not None:
        event = orjson.loads(first_event)
        if event.get("e") == "scheduled" and "due" in event:
            return int(event["due"])
    return int(created)


async def message_figures(
    client: aioredis.Redis, keyspace: Keyspace, user_id: str
) -> dict[str, Any]:
    """``total``, ``counts`` (per status), ``delivery_rate`` and ``ack_latency_ms``
    (due-to-ack: mean and p95 over the delivered messages, and how many there are)."""
    ids = [text(m) for m in await client.zrange(keyspace.user(user_id, "user_msgs"), 0, -1)]
    counts = {s.value: 0 for s in Status}
    latencies: list[int] = []
    for k in range(0, len(ids), CHUNK):
        pipe = client.pipeline(transaction=False)
        for mid in ids[k : k + CHUNK]:
            pipe.hmget(keyspace.msg(mid), _FIELDS)
        for status, created, delivered, first in await pipe.execute():
            if status is None:
                continue  # its retention ended after the index was read
            counts[text(status)] += 1
            if delivered is not None and created is not None:
                latencies.append(max(0, int(delivered) - due_ms(created, first)))
    total = sum(counts.values())
    latencies.sort()
    return {
        "total": total,
        "counts": counts,
        "delivery_rate": round(counts[Status.DELIVERED] / total, 4) if total else None,
        "ack_latency_ms": {
            "mean": round(sum(latencies) / len(latencies), 1) if latencies else None,
            "p95": percentile(latencies, 95),
            "samples": len(latencies),
        },
    }
