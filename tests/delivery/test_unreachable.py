"""Pushes that reach nobody: they never use up attempts, and the message ends parked
once the dead node's presence runs out; leftover pending entries never block retries."""

from __future__ import annotations

import asyncio

from delivery.keys import GROUP
from delivery.presence import Conn
from delivery.producer import Limits
from delivery.store import Timing
from tests.support import Harness


async def test_a_dead_nodes_user_gets_parked_not_dead(r, keyspace) -> None:
    timing = Timing(
        ack_timeout_ms=5_000,
        heartbeat_timeout_ms=600,
        retry_base_seconds=0.02,
        retry_max_seconds=0.05,
    )
    h = await Harness(r, keyspace, timing, Limits()).start()
    # alice's only socket was on a node that just died: fresh heartbeat, nobody listening
    await h.presence.connect(Conn("alice", "c9", "killed-node"))
    await h.presence.heartbeat_node("killed-node")
    sent = await h.producer.send("alice", {"text": "hi"}, max_attempts=2)

    async def parked() -> bool:
        return await h.status(sent.id) == "parked"

    await h.pump(parked, timeout=10)
    msg = await h.store.get(sent.id)
    events = [e.event for e in msg.timeline]
    assert events.count("sent") >= 2  # it was tried more often than max_attempts ...
    assert "dead" not in events and msg.attempts == 0  # ... without using attempts up
    assert {e.detail.get("reason") for e in msg.timeline if e.event == "retry"} == {"unreachable"}


async def test_leftover_pending_entries_are_acknowledged(h: Harness) -> None:
    """A pending entry whose message is gone (its hash expired) is acknowledged by the
    reclaim that finds it, so leftovers never fill a scan and block real retries."""
    part = h.keyspace.partition_of("bob")
    stream = h.keyspace.stream(part, "normal")
    await h.r.xadd(stream, {"m": f"{part}-{'0' * 20}", "u": "bob"})
    await h.r.xreadgroup(GROUP, "gone-consumer", {stream: ">"})
    await asyncio.sleep(0.35)  # past the ack timeout (300 ms)
    assert await h.worker.reclaim(part) == 0  # nothing to dispatch, retry or bury
    assert (await h.r.xpending(stream, GROUP))["pending"] == 0
