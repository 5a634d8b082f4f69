"""SYNC_REPLICAS on a Redis without replicas (the test's own): an accepted enqueue
that no replica acknowledged within SYNC_TIMEOUT_MS is a JSON 503 not_replicated with
Retry-After, and the message was written all the same (at least once). The cluster
side, where the replicas answer, is in tests/test_cluster.py."""

from __future__ import annotations

import time

from delivery.keys import Keyspace
from tests.api.conftest import EdgeFactory


async def test_no_replica_in_time_is_a_503_not_replicated_and_the_message_is_kept(
    edge: EdgeFactory, keyspace: Keyspace
) -> None:
    node = await edge(sync_replicas=1, sync_timeout_ms=50)
    device, _ = await node.online("rita")
    service = {"Authorization": f"Bearer {node.token('backend', role='service')}"}
    t0 = time.monotonic()
    res = await node.http.post(
        "/v1/messages",
        json={"user_id": "rita", "payload": {"n": 1}, "idempotency_key": "k1"},
        headers=service,
    )
    assert time.monotonic() - t0 >= 0.05  # WAIT waited its timeout
    assert res.status_code == 503 and res.headers["retry-after"] == "1"
    error = res.json()["error"]
    assert error["code"] == "not_replicated"
    assert "may still be delivered" in error["detail"]
    frame = await device.recv_type("message")  # written: delivered all the same
    assert frame["payload"] == {"n": 1}
    again = await node.http.post(  # the producer's retry: same key, same message
        "/v1/messages",
        json={"user_id": "rita", "payload": {"n": 1}, "idempotency_key": "k1"},
        headers=service,
    )
    assert again.status_code == 503 and again.json()["error"]["code"] == "not_replicated"
    await device.ack(frame["id"])
    await node.wait_status(frame["id"], "delivered")
    await device.silent(0.3)  # one message, not two
