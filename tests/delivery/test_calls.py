"""The typed calls of ``delivery/calls.py`` (and ``edge_calls``, ``enqueue``, ``tasks``,
``presence``): each lays out its script's ARGV and parses its answer, with an enum for
every outcome. First each parse on the replies the scripts give (bytes, and text for
clients with decode_responses), then each call run against Redis."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from delivery.calls import (
    Bury,
    Dispatch,
    DispatchMany,
    DispatchOutcome,
    Due,
    Entry,
    Expire,
    Overdue,
    Promote,
    Promoted,
    Purge,
    PurgeAnswer,
    PurgeCode,
    Push,
    Replay,
    ReplayAnswer,
    ReplayCode,
    Retry,
    RetryOutcome,
)
from delivery.edge_calls import Ack, AckCode, AckMany, AckRequest, Reply, ReplyCode, Unpark
from delivery.enqueue import Accepted, EnqueueMany, Limits, build
from delivery.exceptions import TooManyConnections
from delivery.keys import GROUP, Keyspace
from delivery.presence import Conn, Connect, Disconnect, Touch
from delivery.status import Status
from delivery.tasks import Cancel, CancelCode, Task, TaskAnswer, TaskCode, TaskStatus
from tests.support import NODE, Harness

P = "courier:{p0}:"
KS = Keyspace("courier", partitions=1)  # P is its only partition prefix
E1 = Entry(0, "normal", "1-1", "0-aa", "alice")
E2 = Entry(0, "high", "1-2", "0-bb", "bob")


def _both(reply: Any) -> list[Any]:
    """The reply as a bytes client and as a decode_responses client sees it."""

    def dec(v: Any) -> Any:
        if isinstance(v, bytes):
            return v.decode()
        if isinstance(v, list):
            return [dec(x) for x in v]
        return v

    return [reply, dec(reply)]


# -- parse, without Redis ---------------------------------------------------------------
@pytest.mark.parametrize("which", [0, 1])
def test_dispatch_answers(which: int) -> None:
    call = DispatchMany(P, [E1, E2, E1, E2], GROUP, 1, 2, 3, 4)
    per_entry = ["1-1", "0-aa", "alice", "normal", "1-2", "0-bb", "bob", "high"]
    assert call.args() == [GROUP, 1, 2, 3, 4, *per_entry, *per_entry]
    reply = [
        [b"sent", 2, b'{"x":1}', b"1700000000000", b"ck", b"", b"1", b"n1|c1", b"n2|c:2"],
        [b"parked"],
        [b"expired"],
        [b"skip", b"delivered"],
    ]
    got = call.parse(_both(reply)[which])
    assert [d[1] for d in got] == list(DispatchOutcome)
    assert [d[0] for d in got] == call.entries
    push = got[0][2]
    assert push == Push(
        id="0-aa",
        user_id="alice",
        priority="normal",
        attempt=2,
        payload_json=_both(reply)[which][0][2],
        created_ms=1700000000000,
        collapse_key="ck",
        topic=None,
        reply_requested=True,
        targets=(("n1", "c1"), ("n2", "c:2")),
    )
    assert [d[2] for d in got[1:]] == [None, None, None]
    one = Dispatch(P, E2, GROUP, 1, 2, 3, 4)
    assert one.args() == ["1-2", "0-bb", "bob", "high", GROUP, 1, 2, 3, 4]
    assert one.parse(_both([b"parked"])[which]) == (E2, DispatchOutcome.PARKED, None)


@pytest.mark.parametrize("which", [0, 1])
def test_ack_answers(which: int) -> None:
    frames = [
        AckRequest("alice", "c1", NODE, ["0-a", "0-b"]),
        AckRequest("bob", "c2", NODE, ["0-c"]),
    ]
    call = AckMany(P, frames, 60_000, 10)
    alice, bob = ["alice", "c1", NODE, 2, "0-a", "0-b"], ["bob", "c2", NODE, 1, "0-c"]
    assert call.args() == [60_000, 10, *alice, *bob]
    reply = _both([b"ok|high|12", b"duplicate", b"forbidden"])[which]
    assert call.parse(reply) == [
        [(AckCode.OK, "high", 12), (AckCode.DUPLICATE, None, None)],
        [(AckCode.FORBIDDEN, None, None)],
    ]
    single = Ack(P, frames[1], 60_000, 10)
    assert single.args() == ["bob", "c2", NODE, 60_000, 10, "0-c"]
    codes = [b"final", b"unknown", b"ok|low|0"]
    assert [code for code, _, _ in single.parse(_both(codes)[which])] == ["final", "unknown", "ok"]


@pytest.mark.parametrize("which", [0, 1])
def test_scheduler_answers(which: int) -> None:
    due = Due(P, 10)
    assert due.args() == [10]
    assert due.parse(_both([b"0-a", b"2", b"5", b"0-b", b"0", b"1"])[which]) == [
        Overdue("0-a", 2, 5),
        Overdue("0-b", 0, 1),
    ]
    retry = Retry(P, "ack_timeout", False, 1, 2, 3, [("0-a", 500), ("0-b", 0)])
    assert retry.args() == ["ack_timeout", "0", 1, 2, 3, "0-a", 500, "0-b", 0]
    assert dataclasses.replace(retry, force=True).args()[1] == "1"
    codes = [b"scheduled", b"dead", b"expired", b"skip"]
    assert retry.parse(_both(codes)[which]) == list(RetryOutcome)
    promote = Promote(P, 50, 9)
    assert promote.args() == [50, 9]
    assert promote.parse([3, b"1700000000123"]) == Promoted(3, 1700000000123)
    assert promote.parse([0, -1]) == Promoted(0, -1)
    assert Expire(P, 50, 9).args() == [50, 9] and Expire(P, 50, 9).parse(4) == 4
    bury = Bury(P, E1, GROUP, "poison", 100, 7)
    assert bury.args() == ["1-1", "0-aa", "alice", "normal", GROUP, "poison", 100, 7]
    assert bury.parse(_both(b"dead")[which]) is Status.DEAD
    assert bury.parse(_both(b"gone")[which]) is None


@pytest.mark.parametrize("which", [0, 1])
def test_edge_and_operator_answers(which: int) -> None:
    unpark = Unpark(P, "a|b", "n1", "c1", 5, 300, 9)
    assert unpark.args() == ["a|b", "n1|c1", 5, 300, 9]
    row = [b"0-a", 1, b"high", b"[1]", b"1700000000000", b"", b"tp", b"0"]
    got = unpark.parse(_both([2, *row])[which])
    assert got.remaining == 2 and len(got.pushes) == 1
    p = got.pushes[0]
    assert (p.id, p.user_id, p.priority, p.attempt, p.topic, p.collapse_key) == (
        "0-a", "a|b", "high", 1, "tp", None,
    )  # fmt: skip
    assert p.targets == (("n1", "c1"),) and not p.reply_requested
    reply = Reply(P, "alice", "c1", "0-a", b'"yes"', "ch", 9)
    assert reply.args() == ["alice", "c1", "0-a", b'"yes"', "ch", 9]
    for code in ReplyCode:
        assert reply.parse(_both(code.value.encode())[which]) is code
    replay = Replay(P, "0-a", 9, "ops")
    assert replay.args() == ["0-a", 9, "ops"]
    assert replay.parse(_both(b"replayed")[which]) == ReplayAnswer(ReplayCode.REPLAYED)
    assert replay.parse(_both(b"unknown")[which]) == ReplayAnswer(ReplayCode.UNKNOWN)
    assert replay.parse(_both(b"queued")[which]) == ReplayAnswer(ReplayCode.NOT_DEAD, Status.QUEUED)
    purge = Purge(P, "0-a")
    assert purge.args() == ["0-a"]
    assert purge.parse(_both(b"purged")[which]) == PurgeAnswer(PurgeCode.PURGED)
    assert purge.parse(_both(b"dead")[which]) == PurgeAnswer(PurgeCode.NOT_LISTED, Status.DEAD)
    cancel = Cancel(P, "alice", "t1", "ch")
    assert cancel.args() == ["alice", "t1", "ch"]
    assert [cancel.parse(_both(c.value.encode())[which]) for c in CancelCode] == list(CancelCode)


def test_unpark_refuses_a_node_id_with_the_separator() -> None:
    with pytest.raises(ValueError, match="node id"):
        Unpark(P, "alice", "n|1", "c1", 5, 300, 9).args()


@pytest.mark.parametrize("which", [0, 1])
def test_enqueue_and_task_answers(which: int) -> None:
    calls = build({"user_id": "alice", "payload": 1}, keyspace=KS, limits=Limits())
    (call,) = calls
    assert call.args() == [call.id, "alice", b"1", *call.opts]
    assert len(call.args()) == 17 and call.opts.index_cap == 10_000
    assert call.opts.escalate_ms == -1  # none asked for, no default
    assert call.parse(_both([call.id.encode(), b"queued", 1])[which]) == Accepted(
        call.id, "alice", "queued", True
    )
    many = EnqueueMany(call.prefix, [call, dataclasses.replace(call, id="0-x")])
    assert many.args()[:1] == [1] and len(many.args()) == 1 + 14 + 2 * 4
    reply = [call.id.encode(), b"queued", 1, b"0-x", b"scheduled", 0]
    assert many.parse(_both(reply)[which]) == [
        Accepted(call.id, "alice", "queued", True),
        Accepted("0-x", "alice", "scheduled", False),
    ]
    task = Task("t1", "alice", TaskStatus.COMPLETED, b"{}", 7, "topics", b"{}", call)
    assert task.prefix == call.prefix
    assert task.args() == ["t1", "alice", "completed", b"{}", 7, "topics", b"{}", "1", *call.args()]
    ok = task.parse(_both([b"ok", call.id.encode(), b"queued", 1])[which])
    assert ok == TaskAnswer(TaskCode.OK, "completed", Accepted(call.id, "alice", "queued", True))
    final = task.parse(_both([b"final", b"failed"])[which])
    assert final == TaskAnswer(TaskCode.FINAL, "failed")


def test_presence_calls_lay_out_their_arguments() -> None:
    c = Conn("a|b", "c1", NODE)
    connect = Connect(P, c, 120_000, {"device": "phone"}, max_per_user=3, live_ms=60_000)
    assert connect.args() == ["a|b", "c1", NODE, 120_000, 3, 60_000, "device", "phone"]
    assert connect.parse(1700000000000) == 1700000000000
    with pytest.raises(TooManyConnections):
        connect.parse(b"full")
    touch = Touch(P, 120_000, [c, Conn("x", "c2", NODE)])
    assert touch.args() == [120_000, "a|b", "c1", NODE, "x", "c2", NODE]
    assert touch.parse([b"c1"]) == ["c1"] and touch.parse(["c1"]) == ["c1"]
    disconnect = Disconnect(P, c, 60_000, "closed 1000", ["0-a"])
    assert disconnect.args() == ["a|b", "c1", NODE, 60_000, "closed 1000", "0-a"]
    assert disconnect.parse(1) == 1


# -- run against Redis -----------------------------------------------------------------
async def test_each_call_runs_against_its_script(h: Harness) -> None:
    """Every typed call through Scripts.run: the layout is what the script reads."""
    ks, t, s = h.keyspace, h.store.timing, h.store.scripts
    prefix = ks.part_of_user("alice")
    assert (
        await h.presence.scripts.run(
            Connect(prefix, Conn("alice", "c1", NODE), 120_000, {"device": "t"})
        )
        > 0
    )
    h.devices.online.add("alice")
    (call,) = build({"user_id": "alice", "payload": 1}, keyspace=ks, limits=Limits())
    assert await s.run(call) == Accepted(call.id, "alice", "queued", True)
    assert await s.run(call) == Accepted(call.id, "alice", "queued", False)  # the same call again
    group = ks.streams(ks.partition_of("alice"))
    resp = await h.r.xreadgroup(GROUP, "probe", {st: ">" for st in group})
    (entry,) = h.worker._entries(resp)
    _, outcome, push = await s.run(
        Dispatch(prefix, entry, GROUP, t.ack_timeout_ms, 60_000, 1000, 3600)
    )
    assert outcome is DispatchOutcome.SENT and push is not None
    assert push.targets == ((NODE, "c1"),) and push.attempt == 1
    frame = AckRequest("alice", "c1", NODE, [call.id])
    ((code, prio, latency_ms),) = await s.run(Ack(prefix, frame, 3600, 10))
    assert code is AckCode.OK and prio == "normal"
    assert latency_ms is not None and latency_ms >= 0
    assert await s.run(AckMany(prefix, [frame], 3600, 10)) == [[(AckCode.DUPLICATE, None, None)]]
    replay = await s.run(Replay(prefix, call.id, 3600, "ops"))
    assert replay == ReplayAnswer(ReplayCode.NOT_DEAD, Status.DELIVERED)
    assert await s.run(Purge(prefix, call.id)) == PurgeAnswer(
        PurgeCode.NOT_LISTED, Status.DELIVERED
    )
    assert await s.run(Promote(prefix, 10, 3600)) == Promoted(0, -1)
    assert await s.run(Due(prefix, 10)) == [] and await s.run(Expire(prefix, 10, 3600)) == 0
    assert await s.run(Retry(prefix, "x", True, 3600, 10, 10, [(call.id, 0)])) == [
        RetryOutcome.SKIP
    ]
    assert await s.run(Unpark(prefix, "alice", NODE, "c1", 5, 300, 3600)) == (0, [])
    mid = call.id
    reply = Reply(prefix, "alice", "c1", mid, b"1", ks.replies_channel(mid), 3600)
    assert await s.run(reply) is ReplyCode.NOT_REQUESTED
    assert await s.run(Cancel(prefix, "alice", "nope", "ch")) is CancelCode.UNKNOWN
    assert await h.presence.scripts.run(Touch(prefix, 120_000, [Conn("alice", "c1", NODE)])) == []
    gone = Disconnect(prefix, Conn("alice", "c1", NODE), 60_000, "test", [])
    assert await h.presence.scripts.run(gone) == 0
