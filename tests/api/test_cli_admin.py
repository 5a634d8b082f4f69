"""The operators' CLI against the test Redis: ``courier status``, ``stats``, ``user``,
``dlq list|replay|purge``, ``token`` and ``send``, as tables and as JSON."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import jwt
import orjson
import pytest
from click.testing import Result
from typer.testing import CliRunner

from api import tables
from api.cli import app
from tests.api.admin_support import QUICK, kill_message
from tests.api.conftest import SECRET, EdgeFactory, Node


class Cli:
    """Runs `courier ...` in a thread (the commands run their own event loop)."""

    def __init__(self, node: Node, data_dir: Path) -> None:
        s = node.settings
        self.env = {
            "COURIER_REDIS_URL": s.redis_url or "",
            "COURIER_KEY_PREFIX": s.key_prefix,
            "COURIER_PARTITIONS": str(s.partitions),
            "COURIER_JWT_SECRET": SECRET,
            "COURIER_DATA_DIR": str(data_dir),
        }
        self.runner = CliRunner()

    async def __call__(self, *args: str, code: int = 0) -> Result:
        result = await asyncio.to_thread(self.runner.invoke, app, list(args), env=self.env)
        assert result.exit_code == code, (args, result.output, result.exception)
        return result

    async def json(self, *args: str) -> Any:
        return orjson.loads((await self(*args, "--json")).stdout)


@pytest.fixture
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tables.console, "width", 250)  # ids must not wrap in tables


async def test_status_stats_user_and_dead_letters(
    edge: EdgeFactory, tmp_path: Path, wide: None
) -> None:
    node = await edge(**QUICK)
    cli = Cli(node, tmp_path)
    c, _ = await node.online("alice")
    ok = await node.send("alice", {"n": 1})
    assert (await c.recv_type("message"))["id"] == ok
    await c.ack(ok)
    await node.wait_status(ok, "delivered")
    dead = await kill_message(node, c, "alice", {"n": 2})

    m = await cli.json("status", ok)
    assert m["status"] == "delivered" and m["recipient"] == "alice"
    assert [e["event"] for e in m["timeline"]] == ["queued", "sent", "acked"]
    text = (await cli("status", ok)).stdout
    assert ok in text and "delivered" in text and "acked" in text
    missing = await cli("status", "0-00000000000000000000", code=1)
    assert "error: no message" in missing.output

    s = await cli.json("stats")
    assert s["dead_letters"] == 1 and s["connections"] == 1 and s["online_users"] == 1
    assert s["streams"]["normal"] == {"length": 0, "pending": 0, "lag": 0}
    text = (await cli("stats")).stdout
    assert "dead_letters" in text and node.rt.node_id in text and "streams" in text

    u = await cli.json("user", "alice")
    assert u["total"] == 2 and u["counts"]["delivered"] == 1 and u["counts"]["dead"] == 1
    assert [x["id"] for x in u["messages"]] == [dead, ok]
    assert u["online"]["devices"] == 1
    text = (await cli("user", "alice", "--status", "dead")).stdout
    assert dead in text and ok not in text

    page = await cli.json("dlq", "list")
    assert [d["id"] for d in page["dead_letters"]] == [dead]
    assert page["dead_letters"][0]["reason"] == "ack_timeout"
    text = (await cli("dlq", "list")).stdout
    assert dead in text and "ack_timeout" in text

    assert await cli.json("dlq", "replay", dead) == {"id": dead, "status": "queued"}
    again = await cli("dlq", "replay", dead, code=1)
    assert "not dead" in again.output
    frame = await c.recv_type("message")
    assert frame["id"] == dead and frame["attempt"] == 1
    await c.ack(dead)
    await node.wait_status(dead, "delivered")
    await c.silent(0.3)
    assert (await cli.json("dlq", "list"))["dead_letters"] == []


async def test_dlq_purge(edge: EdgeFactory, tmp_path: Path, wide: None) -> None:
    node = await edge(**QUICK)
    cli = Cli(node, tmp_path)
    c1, _ = await node.online("bob")
    c2, _ = await node.online("dan")
    first, second = await asyncio.gather(
        kill_message(node, c1, "bob", {"n": 1}), kill_message(node, c2, "dan", {"n": 2})
    )
    usage = await cli("dlq", "purge", code=2)
    assert "message id or --all" in usage.output
    await cli("dlq", "purge", first, "--all", code=2)

    refused = await cli("dlq", "purge", first, code=2)  # no terminal to ask on
    assert "add --yes" in refused.output
    assert await cli.json("dlq", "purge", first, "--yes") == {"id": first, "purged": 1}
    gone = await cli("dlq", "purge", first, "--yes", code=1)
    assert "no dead letter" in gone.output
    assert "purged 1 dead-letter entry" in (await cli("dlq", "purge", "--all", "--yes")).stdout
    assert await cli.json("dlq", "purge", "--all", "-y") == {"purged": 0}
    for mid in (first, second):
        assert (await node.message(mid))["status"] == "dead"


async def test_token_and_send(edge: EdgeFactory, tmp_path: Path) -> None:
    node = await edge()
    cli = Cli(node, tmp_path)
    t = await cli.json("token", "ops", "--role", "admin", "--ttl", "60")
    assert t["user_id"] == "ops" and t["role"] == "admin" and t["expires_in"] == 60
    claims = jwt.decode(t["token"], SECRET, algorithms=["HS256"])
    assert claims["sub"] == "ops" and claims["role"] == "admin"
    plain = (await cli("token", "alice")).stdout.strip()
    assert jwt.decode(plain, SECRET, algorithms=["HS256"])["role"] == "user"

    sent = await cli.json("send", "carol", '{"text": "from the cli"}', "--priority", "high")
    assert sent["user_id"] == "carol" and sent["status"] == "queued"
    m = await node.wait_status(sent["id"], "parked")
    assert m["payload"] == {"text": "from the cli"} and m["priority"] == "high"
    bad = await cli("send", "carol", "{not json", code=2)
    assert "not JSON" in bad.output
