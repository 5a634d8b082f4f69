"""The `courier` command as a person types it, in real processes: choices are checked
(`--role`, `--priority`), `--ttl` must be positive, destructive commands ask first
(in a terminal) or need `--yes`, `--version`, and tables without `None` or Python list
reprs (issue 11: 11)."""

from __future__ import annotations

import asyncio
import os
import pty
import re
import select
import subprocess
import time
from importlib.metadata import version
from pathlib import Path

import orjson
import pytest

from tests.api.admin_support import QUICK, kill_message
from tests.api.conftest import SECRET, EdgeFactory, Node
from tests.serve_support import COURIER, base_env, courier


def env_of(node: Node, tmp_path: Path) -> dict[str, str]:
    s = node.settings
    return base_env(
        tmp_path / "data",
        COURIER_REDIS_URL=s.redis_url or "",
        COURIER_KEY_PREFIX=s.key_prefix,
        COURIER_PARTITIONS=str(s.partitions),
        COURIER_JWT_SECRET=SECRET,
        COLUMNS="250",
    )


def in_terminal(args: list[str], env: dict[str, str], answer: str) -> tuple[int, str]:
    """Run `courier ARGS` on a pseudo-terminal, answer its question; (code, screen)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([COURIER, *args], env=env, stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    screen, answered = b"", False
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            screen += chunk
        if not answered and b"[y/N]" in screen:
            os.write(master, answer.encode() + b"\n")
            answered = True
        if proc.poll() is not None and not ready:
            break
    os.close(master)
    return proc.wait(10), screen.decode(errors="replace")


def test_choices_and_values_are_checked(tmp_path: Path) -> None:
    env = base_env(tmp_path / "data", COURIER_JWT_SECRET=SECRET)
    cases = {
        ("token", "ops", "--role", "root"): "'root' is not one of 'user', 'service', 'admin'",
        ("token", "ops", "--ttl", "0"): "Invalid value for '--ttl'",
        ("token", "ops", "--ttl", "-5"): "Invalid value for '--ttl'",
        ("send", "a", "{}", "--priority", "urgent"): "'urgent' is not one of 'high'",
        ("send", "a", "{}", "--ttl", "0"): "Invalid value for '--ttl'",
        ("send", "a", "{}", "--delay", "-1"): "Invalid value for '--delay'",
    }
    for args, says in cases.items():
        proc = courier(*args, env={**env, "COLUMNS": "250"}, cwd=tmp_path)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert proc.stdout == "" and "Traceback" not in proc.stderr, args
        assert says in proc.stderr, (args, proc.stderr)
        assert len(proc.stderr.splitlines()) <= 6, proc.stderr  # usage + one error box
    for role in ("user", "service", "admin"):
        ok = courier("token", "ops", "--role", role, "--json", env=env, cwd=tmp_path)
        assert ok.returncode == 0 and orjson.loads(ok.stdout)["role"] == role
    v = courier("--version", env=env, cwd=tmp_path)
    assert v.returncode == 0 and v.stdout == f"courier {version('courier')}\n"
    secretless = courier("token", "ops", env=base_env(tmp_path / "empty"), cwd=tmp_path)
    assert secretless.returncode == 1 and len(secretless.stderr.splitlines()) == 1
    assert "no JWT secret: set COURIER_JWT_SECRET" in secretless.stderr


async def dead_letters(node: Node, n: int) -> list[str]:
    c, _ = await node.online("erin")
    return [await kill_message(node, c, "erin", {"n": i}) for i in range(n)]


async def run(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(courier, *args, env=env, cwd=cwd)


async def test_destructive_commands_ask_first(edge: EdgeFactory, tmp_path: Path) -> None:
    node = await edge(**QUICK)
    env = env_of(node, tmp_path)
    first, second = await dead_letters(node, 2)

    for args in (["dlq", "purge", "--all"], ["dlq", "purge", first], ["dlq", "replay", "--all"]):
        refused = await run(*args, env=env, cwd=tmp_path)  # no terminal, no --yes
        assert refused.returncode == 2, refused.stderr
        assert "Refused: no terminal to confirm on; add --yes." in refused.stderr
    code, screen = await asyncio.to_thread(in_terminal, ["dlq", "purge", "--all"], env, "n")
    assert code == 1 and "Remove all 2 dead-letter entries" in screen and "Nothing done" in screen
    page = orjson.loads((await run("dlq", "list", "--json", env=env, cwd=tmp_path)).stdout)
    assert {d["id"] for d in page["dead_letters"]} == {first, second}  # nothing went

    code, screen = await asyncio.to_thread(in_terminal, ["dlq", "purge", first], env, "y")
    assert code == 0 and "purged 1 dead-letter entry" in screen, screen
    replay = await run("dlq", "replay", "--all", "--yes", "--json", env=env, cwd=tmp_path)
    assert orjson.loads(replay.stdout) == {"replayed": 1}, replay.stderr
    assert "replayed" in [e["event"] for e in (await node.message(second))["timeline"]]
    assert (await node.message(first))["status"] == "dead"  # purged, not replayed


def no_reprs(text: str) -> None:
    for bad in ("None", "['", "[]", "{'", "True", "False"):
        assert bad not in text, (bad, text)


async def test_tables_read_well(edge: EdgeFactory, tmp_path: Path) -> None:
    node = await edge()
    env = env_of(node, tmp_path)
    c, _ = await node.online("fay")
    mid = await node.send("fay", {"text": "hi"})
    assert (await c.recv_type("message"))["id"] == mid
    await c.ack(mid)
    await node.wait_status(mid, "delivered")
    parked = await node.send("gus", {"text": "later"})
    await node.wait_status(parked, "parked")

    for target in (mid, parked):
        out = (await run("status", target, env=env, cwd=tmp_path)).stdout
        assert target in out
        no_reprs(out)
    delivered = (await run("status", mid, env=env, cwd=tmp_path)).stdout
    assert f"to={node.rt.node_id}|" in delivered  # the list of connections, joined
    out = (await run("status", parked, env=env, cwd=tmp_path)).stdout
    assert re.search(r"^last_error +- *$", out, re.M), out
    for args in (["stats"], ["user", "gus"], ["dlq", "list"]):
        proc = await run(*args, env=env, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        no_reprs(proc.stdout)


async def test_tables_keep_ids_and_urls_whole_at_80_columns(
    edge: EdgeFactory, tmp_path: Path
) -> None:
    """A terminal of 80 columns (also what rich takes when stdout is no terminal):
    an id or URL is on one line, whole, to copy; other columns fold instead."""
    node = await edge()
    env = {**env_of(node, tmp_path), "COLUMNS": "80"}
    ids = [await node.send("narrow-hal", {"text": f"n{i}"}) for i in range(2)]
    for mid in ids:
        await node.wait_status(mid, "parked")
    url = "https://hooks.example.com/courier/deliveries/tenant-acme-production?v=2"
    added = await run("webhooks", "add", "crm-production", url, env=env, cwd=tmp_path)
    assert added.returncode == 0, added.stderr
    for args, whole in ((["user", "narrow-hal"], ids), (["webhooks", "list"], [url])):
        proc = await run(*args, env=env, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        lines = proc.stdout.splitlines()
        for value in whole:
            assert any(value in line for line in lines), (value, proc.stdout)
        assert "…" not in proc.stdout, proc.stdout
    assert (
        await run("webhooks", "remove", "crm-production", env=env, cwd=tmp_path)
    ).returncode == 0


def test_help_shows_no_type_after_a_flag(tmp_path: Path) -> None:
    env = base_env(tmp_path / "data", COLUMNS="100")
    for args in (["--help"], ["send", "--help"], ["dlq", "purge", "--help"]):
        out = courier(*args, env=env, cwd=tmp_path).stdout
        assert "<bool>" not in out, out
        assert re.search(r"--help +Show this message and exit", out), out
    assert re.search(
        r"--priority +<high\|normal\|low>", courier("send", "--help", env=env, cwd=tmp_path).stdout
    )


def test_load_settings_says_which_redis_without_its_password(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from api.runtime import load_settings

    monkeypatch.setenv("COURIER_REDIS_URL", "redis://app:hunter2@127.0.0.1:6390/0")
    caplog.set_level("INFO", logger="api.runtime")
    assert load_settings().redis_url == "redis://app:hunter2@127.0.0.1:6390/0"
    assert caplog.messages == [
        "using Redis at redis://app:***@127.0.0.1:6390/0 (COURIER_REDIS_URL)"
    ]
