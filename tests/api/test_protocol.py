"""The protocol module: frames exactly as they go on the wire, and the names in code
agreeing with docs/protocol.md and with the frames delivery builds."""

from __future__ import annotations

import re
from pathlib import Path

import orjson

from api import protocol
from api.frames import HANDLERS
from api.protocol import ClientFrame, CloseCode, ErrorCode, ServerFrame, close_label
from delivery.message import message_frame

DOC = (Path(__file__).parents[2] / "docs" / "protocol.md").read_text()


def test_server_frames_are_compact_json_in_a_fixed_key_order() -> None:
    assert protocol.connected(
        connection_id="c1", user_id="alice", heartbeat_interval=30.0, server_time="T"
    ) == (
        '{"type":"connected","connection_id":"c1","user_id":"alice",'
        '"heartbeat_interval":30.0,"server_time":"T"}'
    )
    assert protocol.pong(17) == '{"type":"pong","ts":17}'
    assert protocol.error(ErrorCode.UNKNOWN_MESSAGE, "no message m", id="m") == (
        '{"type":"error","code":"unknown_message","detail":"no message m","id":"m"}'
    )
    assert protocol.subscribed("task:1") == '{"type":"subscribed","topic":"task:1"}'
    assert protocol.unsubscribed("task:1") == '{"type":"unsubscribed","topic":"task:1"}'
    assert protocol.topic("task:1", {"s": 1}) == '{"type":"topic","topic":"task:1","data":{"s":1}}'
    assert protocol.refreshed(1700000000) == '{"type":"refreshed","exp":1700000000}'
    assert protocol.refreshed(1700000000.5) == '{"type":"refreshed","exp":1700000000.5}'
    assert protocol.tasks([{"task_id": "1"}]) == '{"type":"tasks","tasks":[{"task_id":"1"}]}'
    assert protocol.broadcast(broadcast_id="b1", payload_json=b'{"a": [1]}', system=True) == (
        '{"type":"broadcast","id":"b1","payload":{"a": [1]},"system":true}'
    )


def test_the_message_frame_delivery_builds_is_a_server_frame_type() -> None:
    frame = orjson.loads(
        message_frame(message_id="0-1", priority="high", payload_json=b"1", created_ms=0, attempt=1)
    )
    assert frame["type"] == ServerFrame.MESSAGE


def test_every_client_frame_type_has_a_handler() -> None:
    assert set(HANDLERS) == set(ClientFrame)


def test_the_documented_close_codes_are_the_ones_the_server_sends() -> None:
    table = dict(re.findall(r"^\| (\d{4}) \| ([^|]+) \|", DOC, re.M))
    never_sent = {CloseCode.ABNORMAL, CloseCode.SERVICE_RESTART}  # recorded, not sent
    assert {int(c) for c in table} == {int(c) for c in CloseCode if c not in never_sent}
    assert "1006" in DOC and "1012" in DOC  # explained in the text below the table


def test_the_documented_error_codes_are_the_ones_the_server_sends() -> None:
    table = DOC.split("| `code` | cause |")[1].split("\n\n")[0]
    rows = re.findall(r"^\| ([^|]+) \|", table, re.M)[1:]  # after the separator row
    documented = {code for row in rows for code in re.findall(r"`([a-z_]+)`", row)}
    assert documented == set(ErrorCode)


def test_close_codes_as_metric_labels_stay_few() -> None:
    assert close_label(CloseCode.HEARTBEAT_MISSED) == "4408"
    assert close_label(1000) == "1000"
    assert close_label(3000) == "other" and close_label(4999) == "other"
    assert {close_label(c) for c in CloseCode} == {str(int(c)) for c in CloseCode}


def test_every_close_code_sent_has_a_reason() -> None:
    for code in CloseCode:
        assert code.reason or code is CloseCode.NORMAL, code
    assert protocol.reason_of(4429) == "rate limited" and protocol.reason_of(3000) == ""
