"""task.lua and cancel.lua, one test each: what they write and what they answer."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from delivery.exceptions import Conflict
from tests.support import Harness


async def test_task_script_writes_task_message_index_and_live_frame(h: Harness) -> None:
    ks = h.keyspace
    ps = h.r.pubsub()
    await ps.subscribe(ks.topics_channel)
    await ps.get_message(timeout=1)  # the subscribe confirmation

    out = await h.producer.task_status("t1", "alice", "progress", progress=40, message="half")

    task = await h.r.hgetall(ks.user("alice", "task", task="t1"))
    assert task[b"status"] == b"progress" and task[b"user_id"] == b"alice"
    assert orjson.loads(task[b"data"])["progress"] == 40
    assert task[b"message_id"].decode() == out["message_id"]
    assert 0 < await h.r.pttl(ks.user("alice", "task", task="t1")) <= 7 * 86400 * 1000
    assert await h.r.zrange(ks.user("alice", "user_tasks"), 0, -1) == [b"t1"]
    msg = await h.store.get(out["message_id"])
    assert msg.collapse_key == "task:t1" and msg.topic == "task:t1"
    assert msg.payload["status"] == "progress" and str(msg.status) == "queued"
    live = None
    for _ in range(50):
        live = await ps.get_message(ignore_subscribe_messages=True, timeout=0.1)
        if live:
            break
    assert live is not None
    env = orjson.loads(live["data"])
    assert env["t"] == "task:t1" and env["o"] == "alice" and env["f"]["type"] == "topic"
    await ps.aclose()

    # a final status: the task leaves the active index, its message is never collapsed
    done = await h.producer.task_status("t1", "alice", "completed", result={"ok": True})
    assert await h.r.exists(ks.user("alice", "user_tasks")) == 0
    assert await h.r.hget(ks.msg(done["message_id"]), "keep") == b"1"
    assert str((await h.store.get(out["message_id"])).status) == "cancelled"  # collapsed
    with pytest.raises(Conflict):  # and nothing changes a task that ended
        await h.producer.task_status("t1", "alice", "running")
    assert (await h.producer.get_task("t1", "alice"))["status"] == "completed"


async def test_cancel_script_flags_own_task_and_publishes(h: Harness) -> None:
    ks = h.keyspace
    await h.producer.task_status("t2", "bob", "running")
    ps = h.r.pubsub()
    await ps.subscribe(ks.cancel_channel("t2"))
    await ps.get_message(timeout=1)

    assert await h.store.request_cancel(user_id="bob", task_id="t2") == "ok"
    assert await h.store.request_cancel(user_id="bob", task_id="nope") == "unknown"
    assert await h.store.request_cancel(user_id="carol", task_id="t2") == "unknown"

    assert await h.r.hget(ks.user("bob", "task", task="t2"), "cancel_requested") == b"1"
    assert await h.r.exists(ks.user("bob", "task", task="nope")) == 0  # nothing written
    heard = None
    for _ in range(50):
        heard = await ps.get_message(ignore_subscribe_messages=True, timeout=0.1)
        if heard:
            break
    assert heard is not None and heard["data"] == b"bob"
    await ps.aclose()
    await asyncio.sleep(0)
