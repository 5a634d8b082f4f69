"""The typed calls of ``delivery/calls.py`` (and ``edge_calls``, ``enqueue``, ``tasks``,
``presence``): each lays out its script's ARGV and parses its answer, with an enum for
every outcome. First each parse on the replies the scripts give (bytes, and text for
clients with decode_responses), then each call run against Redis."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from delivery.calls import (
    Dispatch,
    DispatchMany,
    DispatchOutcome,
    Entry,
    Expire,
    Overdue,
    Promote,
    Promoted,
    Purge,
    PurgeAnswer,
    PurgeCode,
    Push,
    Reclaim,
    Reclaimed,
    Replay,
    ReplayAnswer,
    ReplayCode,
    Retry,
    RetryOutcome,
    Trim,
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
E1 = Entry(0, "normal", "1-1", "0-aa", "alice", b'{"x":1}', 1700000000000, "ck", None, True)
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
    kept = dataclasses.replace(E1, keep=True)  # never collapsed away: no collapse check
    call = DispatchMany(P, [E1, E2, E1, kept], 2, 3, 4)
    first = ["1-1", "0-aa", "alice", "normal", "ck", "1-2", "0-bb", "bob", "high", ""]
    assert call.args() == [2, 3, 4, *first, *first[:5], *first[:4], ""]
    reply = [b"sent", b"2", 2, b"n1|c1", b"n2|c:2", b"parked", b"expired", b"skip", b"delivered"]
    got = call.parse(_both(reply)[which])
    assert [d[1] for d in got] == list(DispatchOutcome)
    assert [d[0] for d in got] == call.entries
    push = got[0][2]
    assert push == Push(
        id="0-aa",
        user_id="alice",
        priority="normal",
        attempt=2,
        payload_json=b'{"x":1}',  # from the entry: the script neither reads nor answers it
        created_ms=1700000000000,
        collapse_key="ck",
        topic=None,
        reply_requested=True,
        targets=(("n1", "c1"), ("n2", "c:2")),
        record="1-1",  # its in-flight record: the entry stays pending
    )
    assert [d[2] for d in got[1:]] == [None, None, None]
    one = Dispatch(P, E2, 2, 3, 4)
    assert one.args() == ["1-2", "0-bb", "bob", "high", "", 2, 3, 4]
    assert one.parse(_both([b"parked"])[which]) == (E2, DispatchOutcome.PARKED, None)


@pytest.mark.parametrize("which", [0, 1])
def test_ack_answers(which: int) -> None:
    frames = [
        AckRequest("alice", "c1", NODE, ["0-a", "0-b"]),
        AckRequest("bob", "c2", NODE, ["0-c"]),
    ]
    call = AckMany(P, frames, 60_000)
    alice, bob = ["alice", "c1", NODE, 2, "0-a", "0-b"], ["bob", "c2", NODE, 1, "0-c"]
    assert call.args() == [60_000, *alice, *bob]
    # the server time first; a latency is that time minus the message's creation
    reply = _both([b"1700000000100", b"ok|high|1700000000088", b"duplicate", b"forbidden"])
    assert call.parse(reply[which]) == [
        [(AckCode.OK, "high", 12), (AckCode.DUPLICATE, None, None)],
        [(AckCode.FORBIDDEN, None, None)],
    ]
    single = Ack(P, frames[1], 60_000)
    assert single.args() == ["bob", "c2", NODE, 60_000, "0-c"]
    codes = [b"5", b"final", b"unknown", b"ok|low|5"]
    assert single.parse(_both(codes)[which]) == [
        (AckCode.FINAL, None, None),
        (AckCode.UNKNOWN, None, None),
        (AckCode.OK, "low", 0),
    ]


@pytest.mark.parametrize("which", [0, 1])
def test_scheduler_answers(which: int) -> None:
    reclaim = Reclaim(P, "w1", 30_000, 100, 5, 1000, 7, ("1-0", "0-0", "0-0", "2-0"))
    assert reclaim.args() == ["w1", 30_000, 100, 5, 1000, 7, "1-0", "0-0", "0-0", "2-0"]
    reply = [b"", b"", b"", b"3-0"]  # how each stream's next scan goes on
    reply += [2, b"0-a", b"5-1", b"2", b"0-b", b"d6-0", b"1"]  # overdue
    reply += [1, b"low", b"7-0", 2, 4, b"m", b"0-c", b"u", b"bob"]  # to dispatch (2 deliveries)
    reply += [1, b"8-0", b"0-d"]  # buried as poison
    assert reclaim.parse(_both(reply)[which]) == Reclaimed(
        ("", "", "", "3-0"),
        [Overdue("0-a", "5-1", 2), Overdue("0-b", "d6-0", 1)],
        [("low", "7-0", 2, _both({b"m": b"0-c", b"u": b"bob"})[0])]
        if which == 0
        else [("low", "7-0", 2, {"m": "0-c", "u": "bob"})],
        [("8-0", "0-d")],
    )
    assert reclaim.parse([b""] * 4 + [0, 0, 0]) == Reclaimed(("",) * 4, [], [], [])
    retry = Retry(P, "ack_timeout", 1, 2, 3, [("0-a", "5-1", 500), ("0-b", "", 0)])
    assert retry.args() == ["ack_timeout", 1, 2, 3, "0-a", "5-1", 500, "0-b", "", 0]
    codes = [b"scheduled", b"dead", b"expired", b"skip"]
    assert retry.parse(_both(codes)[which]) == list(RetryOutcome)
    promote = Promote(P, 50, 9)
    assert promote.args() == [50, 9]
    assert promote.parse([3, b"1700000000123"]) == Promoted(3, 1700000000123)
    assert promote.parse([0, -1]) == Promoted(0, -1)
    assert Expire(P, 50, 9).args() == [50, 9] and Expire(P, 50, 9).parse(4) == 4
    assert Trim(P).args() == [] and Trim(P).parse([1, 0, 2, 0]) == [1, 0, 2, 0]


@pytest.mark.parametrize("which", [0, 1])
def test_edge_and_operator_answers(which: int) -> None:
    unpark = Unpark(P, "a|b", "n1", "c1", 5, 9)
    assert unpark.args() == ["a|b", "n1", "c1", 5, 9]
    row = [b"0-a", b"1", b"high", b"[1]", b"1700000000000", b"", b"tp", b"0", b"d9-0"]
    got = unpark.parse(_both([2, *row])[which])
    assert got.remaining == 2 and len(got.pushes) == 1
    p = got.pushes[0]
    assert (p.id, p.user_id, p.priority, p.attempt, p.topic, p.collapse_key) == (
        "0-a", "a|b", "high", 1, "tp", None,
    )  # fmt: skip
    assert p.targets == (("n1", "c1"),) and not p.reply_requested and p.record == "d9-0"
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
        Unpark(P, "alice", "n|1", "c1", 5, 9).args()


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
    reply = [b"queued", b"=0-y|scheduled"]  # a created one, then a repeat (of 0-y)
    assert many.parse(_both(reply)[which]) == [
        Accepted(call.id, "alice", "queued", True),
        Accepted("0-y", "alice", "scheduled", False),
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
    _, outcome, push = await s.run(Dispatch(prefix, entry, 60_000, 1000, 3600))
    assert outcome is DispatchOutcome.SENT and push is not None
    assert push.targets == ((NODE, "c1"),) and push.attempt == 1
    assert push.payload_json == b"1" and push.record == entry.entry_id
    frame = AckRequest("alice", "c1", NODE, [call.id])
    ((code, prio, latency_ms),) = await s.run(Ack(prefix, frame, 3600))
    assert code is AckCode.OK and prio == "normal"
    assert latency_ms is not None and latency_ms >= 0
    assert await s.run(AckMany(prefix, [frame], 3600)) == [[(AckCode.DUPLICATE, None, None)]]
    replay = await s.run(Replay(prefix, call.id, 3600, "ops"))
    assert replay == ReplayAnswer(ReplayCode.NOT_DEAD, Status.DELIVERED)
    assert await s.run(Purge(prefix, call.id)) == PurgeAnswer(
        PurgeCode.NOT_LISTED, Status.DELIVERED
    )
    assert await s.run(Promote(prefix, 10, 3600)) == Promoted(0, -1)
    assert await s.run(Expire(prefix, 10, 3600)) == 0
    assert await s.run(Trim(prefix)) == [0, 0, 0, 0]  # the acked entry is trimmed
    reclaim = Reclaim(prefix, "probe", t.ack_timeout_ms, 10, 5, 10, 10)
    assert await s.run(reclaim) == Reclaimed(("",) * 4, [], [], [])
    assert await s.run(Retry(prefix, "x", 3600, 10, 10, [(call.id, "", 0)])) == [RetryOutcome.SKIP]
    assert await s.run(Unpark(prefix, "alice", NODE, "c1", 5, 3600)) == (0, [])
    mid = call.id
    reply = Reply(prefix, "alice", "c1", mid, b"1", ks.replies_channel(mid), 3600)
    assert await s.run(reply) is ReplyCode.NOT_REQUESTED
    assert await s.run(Cancel(prefix, "alice", "nope", "ch")) is CancelCode.UNKNOWN
    assert await h.presence.scripts.run(Touch(prefix, 120_000, [Conn("alice", "c1", NODE)])) == []
    gone = Disconnect(prefix, Conn("alice", "c1", NODE), 60_000, "test", [])
    assert await h.presence.scripts.run(gone) == 0


def test_a_plain_message_builds_as_the_model_builds_it() -> None:
    """build() takes a dict of only user_id and payload without building MessageIn;
    its call is the one the model gives, and anything invalid (or any other shape)
    goes through the model, which says what is wrong."""
    from delivery.exceptions import ValidationError
    from delivery.message import MessageIn

    limits = Limits(default_ttl_seconds=3600, max_attempts=7)
    plain = {"user_id": "alice", "payload": {"n": 1}}
    (fast,) = build(plain, keyspace=KS, limits=limits, keep=True)
    (model,) = build(MessageIn.model_validate(plain), keyspace=KS, limits=limits, keep=True)
    assert (fast.prefix, fast.user_id, fast.payload, fast.opts) == (
        model.prefix,
        model.user_id,
        model.payload,
        model.opts,
    )
    assert fast.id != model.id and fast.id.startswith("0-")
    for bad, error in [
        ({"user_id": "a{b}", "payload": 1}, "user_id: Value error, user_id must not"),
        ({"user_id": "", "payload": 1}, "user_id: Value error, user_id must be 1 to"),
        ({"user_id": "alice", "payload": None}, "payload is required"),
        ({"user_id": 5, "payload": 1}, "user_id: Input should be a valid string"),
    ]:
        with pytest.raises(ValidationError, match=error):
            build(bad, keyspace=KS, limits=limits)
