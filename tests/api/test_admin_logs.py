"""JSON logs (COURIER_LOG_FORMAT=json) carry the ids that let an operator follow one
message and one connection across processes."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import orjson
import pytest

from api.logs import JsonFormatter, configure
from tests.api.admin_support import QUICK, admin, kill_message, wait_for
from tests.api.conftest import EdgeFactory


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    loggers = [logging.getLogger(n) for n in ("api.ws", "delivery.store")]
    saved = [(lg, lg.level) for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.INFO)
    yield out
    for lg, level in saved:
        lg.removeHandler(handler)
        lg.setLevel(level)


async def test_lifecycle_log_lines_carry_message_user_and_connection_ids(
    edge: EdgeFactory, json_lines: io.StringIO
) -> None:
    node = await edge(**QUICK)
    c, hello = await node.online("alice")
    mid = await kill_message(node, c, "alice", {"n": 1})
    assert (await admin(node, "POST", f"/v1/dead-letters/{mid}/replay")).status_code == 202
    await c.close()
    conn = hello["connection_id"]

    lines = [orjson.loads(x) for x in json_lines.getvalue().splitlines()]
    assert all({"ts", "level", "logger", "msg"} <= set(x) for x in lines)

    def having(**fields: str) -> list[dict[str, str]]:
        return [x for x in lines if all(x.get(k) == v for k, v in fields.items())]

    connected = having(conn_id=conn, user_id="alice", logger="api.ws")
    assert any(x["msg"].startswith("connected") for x in connected), lines
    assert all(x["node_id"] == node.rt.node_id for x in connected)
    dead = having(message_id=mid, logger="delivery.store")
    assert [x["msg"] for x in dead] == [
        f"message {mid} scheduled (ack_timeout)",
        f"message {mid} dead (ack_timeout)",
        f"message {mid} replayed by ops",
    ]

    async def goodbye() -> bool:  # logged once the server saw the close
        now = [orjson.loads(x) for x in json_lines.getvalue().splitlines()]
        return any(
            x.get("conn_id") == conn
            and x.get("user_id") == "alice"
            and x["msg"].startswith("disconnected")
            for x in now
        )

    await wait_for(goodbye, within=5)


def test_configure_json_writes_one_json_object_per_line(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        configure("INFO", "json")
        logging.getLogger("courier.test").info(
            "message %s acked", "3-abc", extra={"message_id": "3-abc", "user_id": "u1"}
        )
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    line = capsys.readouterr().err.strip().splitlines()[-1]
    doc = orjson.loads(line)
    assert doc["msg"] == "message 3-abc acked" and doc["level"] == "info"
    assert doc["message_id"] == "3-abc" and doc["user_id"] == "u1" and "conn_id" not in doc


async def test_at_debug_one_message_can_be_followed_from_enqueue_to_ack(
    edge: EdgeFactory,
) -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    names = ("delivery.producer", "consumers.worker", "delivery.store")
    loggers = [logging.getLogger(n) for n in names]
    saved = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)
    try:
        node = await edge(**QUICK)
        c, hello = await node.online("alice")
        mid = await node.send("alice", {"n": 1})
        await c.recv_type("message")
        await c.ack(mid)
        await node.wait_status(mid, "delivered")
    finally:
        for lg, level in zip(loggers, saved, strict=True):
            lg.removeHandler(handler)
            lg.setLevel(level)
    lines = [orjson.loads(x) for x in out.getvalue().splitlines()]
    mine = [(x["logger"], x["msg"]) for x in lines if x.get("message_id") == mid]
    # The producer logs once its call returns: a fast worker may log "sent" before it.
    assert sorted(mine) == [
        ("consumers.worker", f"message {mid} sent to 1 connection(s), attempt 1"),
        ("delivery.producer", f"message {mid} queued for alice"),
        ("delivery.store", f"message {mid} delivered to {hello['connection_id']}"),
    ]
    assert mine[-1][0] == "delivery.store"  # the ack comes after the push
    assert all(x["user_id"] == "alice" for x in lines if x.get("message_id") == mid)
