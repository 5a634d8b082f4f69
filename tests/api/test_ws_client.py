"""scripts/client.py against a real edge: prints and acks messages, reconnects after
the server drops it, gives up on a refused token."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

from tests.api.conftest import EdgeFactory, Node

SCRIPT = str(Path(__file__).resolve().parents[2] / "scripts" / "client.py")


async def run_client(node: Node, token: str, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        SCRIPT,
        "--url",
        node.ws_url,
        "--token",
        token,
        "--backoff-base",
        "0.05",
        "--backoff-max",
        "0.2",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def finish(proc: asyncio.subprocess.Process, within: float = 20) -> tuple[str, str]:
    out, err = await asyncio.wait_for(proc.communicate(), within)
    return out.decode(), err.decode()


async def wait_online(node: Node, user: str, n: int = 1, within: float = 10) -> None:
    deadline = time.monotonic() + within
    while len(node.hub.by_user.get(user, ())) < n:
        assert time.monotonic() < deadline, f"{user} did not connect"
        await asyncio.sleep(0.02)


async def test_client_prints_acks_and_reconnects(edge: EdgeFactory) -> None:
    node = await edge(heartbeat_interval_seconds=0.2, heartbeat_timeout_seconds=1)
    parked = await node.send("zoe", {"n": 0})
    await node.wait_status(parked, "parked")
    proc = await run_client(node, node.token("zoe"), "--max-messages", "3", "--auth", "subprotocol")
    try:
        await node.wait_status(parked, "delivered")
        live = await node.send("zoe", {"n": 1})
        await node.wait_status(live, "delivered")
        # Its heartbeats keep it alive past the 1 s heartbeat timeout.
        await asyncio.sleep(1.3)
        (conn,) = node.hub.by_user["zoe"]
        conn.request_close(1011, "test drops it")  # the client must come back
        deadline = time.monotonic() + 10
        while not any(c is not conn for c in node.hub.by_user.get("zoe", ())):
            assert time.monotonic() < deadline, "the client did not reconnect"
            await asyncio.sleep(0.02)
        last = await node.send("zoe", {"n": 2})
        out, err = await finish(proc)
    finally:
        if proc.returncode is None:
            proc.kill()
    assert proc.returncode == 0, err
    frames = [json.loads(line) for line in out.splitlines()]
    assert [f["id"] for f in frames] == [parked, live, last]
    assert [f["payload"] for f in frames] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert all(f["type"] == "message" for f in frames)
    assert err.count("connected as zoe") == 2
    assert "reconnecting in" in err
    await node.wait_status(last, "delivered")


async def test_client_acks_in_batches(edge: EdgeFactory) -> None:
    node = await edge()
    proc = await run_client(node, node.token("yves"), "--max-messages", "20", "--ack-delay", "0.2")
    try:
        await wait_online(node, "yves")
        ids = [
            a[0].id
            for a in await node.rt.producer.submit_many(
                [{"user_id": "yves", "payload": i} for i in range(20)]
            )
        ]
        out, err = await finish(proc)
    finally:
        if proc.returncode is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert sorted(json.loads(line)["id"] for line in out.splitlines()) == sorted(ids)
    acked_at = set()
    for mid in ids:
        m = await node.wait_status(mid, "delivered")
        assert m["attempts"] == 1
        acked_at.add(next(e["at"] for e in m["timeline"] if e["event"] == "acked"))
    assert len(acked_at) <= 5  # one ack frame (one script call, one time) per batch


async def test_client_gives_up_on_refused_token(edge: EdgeFactory) -> None:
    node = await edge()
    proc = await run_client(node, "not.a.jwt")
    out, err = await finish(proc, within=10)
    assert proc.returncode == 2
    assert "4401" in err and out == ""
