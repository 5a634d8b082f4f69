from __future__ import annotations

import itertools
import re
from importlib import resources

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from delivery.exceptions import IllegalTransition
from delivery.keys import Keyspace
from delivery.scripts import prelude, source
from delivery.status import FINAL, TRANSITIONS, Status, check_transition
from tests.support import Harness, neighbour


def _lua_allowed() -> set[tuple[str, str]]:
    """The ALLOWED transitions exactly as Redis receives them inside a script."""
    text = source("ack")
    line = re.search(r"^local ALLOWED = ' (.*) '$", text, re.M)
    assert line, "no ALLOWED string in the script source"
    pairs = {tuple(word.split(">")) for word in line.group(1).split(" ")}
    return pairs  # type: ignore[return-value]


def test_lua_table_is_the_python_table() -> None:
    lua = _lua_allowed()
    assert lua == {(old.value, n.value) for old, news in TRANSITIONS.items() for n in news}
    assert {old for old, _ in lua} == {s.value for s in Status if not s.final}


def test_lua_final_statuses_are_the_python_ones() -> None:
    prelude = resources.files("delivery.lua").joinpath("_lib.lua").read_text()
    m = re.search(r"^local FINAL = \{(.*?)\}$", prelude, re.M)
    assert m
    assert set(re.findall(r"(\w+) = true", m.group(1))) == {s.value for s in FINAL}


def test_final_statuses_have_no_way_out() -> None:
    assert FINAL == {Status.DELIVERED, Status.EXPIRED, Status.CANCELLED}
    for s in Status:
        assert s.final == (s in FINAL)
        if s.final:
            assert TRANSITIONS[s] == frozenset()
            for new in Status:
                with pytest.raises(IllegalTransition):
                    check_transition(s, new)
    # dead leaves only by an operator's replay, or by a late ack of one of its attempts
    assert TRANSITIONS[Status.DEAD] == {Status.QUEUED, Status.DELIVERED}


def test_check_transition_accepts_exactly_the_table() -> None:
    for old, new in itertools.product(Status, Status):
        if new in TRANSITIONS[old]:
            check_transition(old, new)
        else:
            with pytest.raises(IllegalTransition, match=f"{old} message cannot become {new}"):
                check_transition(old, new)


SET_STATUS = """
local mkey = key_msg(ARGV[1])
set_status(mkey, ARGV[2], ARGV[3], ARGV[4])
return redis.call('HGET', mkey, 's')
"""


async def test_lua_set_status_refuses_every_illegal_transition(
    r: aioredis.Redis, keyspace: Keyspace
) -> None:
    script = r.register_script(prelude() + "\n" + SET_STATUS)  # the whole prelude
    prefix = keyspace.part(0)
    for i, (old, new) in enumerate(itertools.product(Status, Status)):
        mid = f"0-{i:020x}"
        await r.hset(keyspace.msg(mid), "s", old.value)
        args = [mid, "alice", old.value, new.value]
        if new in TRANSITIONS[old]:
            assert await script(keys=[prefix], args=args) == new.value.encode()
        else:
            with pytest.raises(ResponseError, match=f"illegal transition {old} -> {new}"):
                await script(keys=[prefix], args=args)
            assert await r.hget(keyspace.msg(mid), "s") == old.value.encode()  # unchanged


async def test_scripts_leave_final_messages_alone(h: Harness) -> None:
    await h.connect("alice")
    sent = await h.producer.send("alice", {"n": 1})
    await h.pump()
    assert await h.ack("alice", [sent.id]) == {sent.id: "ok"}
    key = h.keyspace.msg(sent.id)
    before = await h.r.hgetall(key)

    prefix = h.keyspace.part_of_message(sent.id)
    assert await h.store.scripts.replay(keys=[prefix], args=[sent.id, 1000, "op"]) == b"delivered"
    assert await h.ack("alice", [sent.id]) == {sent.id: "duplicate"}
    other = neighbour(h.keyspace, "alice")
    raw = await h.store.scripts.ack(keys=[prefix], args=[other, "c", "n", 1000, sent.id])
    assert raw[1:] == [b"forbidden"]
    elsewhere = next(
        u
        for u in (f"u{i}" for i in range(100))
        if h.keyspace.partition_of(u) != h.keyspace.partition_of("alice")
    )
    assert await h.ack(elsewhere, [sent.id]) == {sent.id: "unknown"}
    assert await h.ack(other, [sent.id]) == {sent.id: "forbidden"}
    p = h.keyspace.partition_of("alice")
    missing = f"{p}-{'f' * 20}"  # right partition, no such message: Lua answers
    codes = await h.ack("alice", [missing, "nonsense"])
    assert codes == {missing: "unknown", "nonsense": "unknown"}
    assert await h.store.scripts.purge(keys=[prefix], args=[sent.id]) == b"delivered"
    assert await h.store.expire_parked(h.keyspace.partition_of("alice")) == 0
    assert await h.r.hgetall(key) == before  # nothing changed, not even the timeline
