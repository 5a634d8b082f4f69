"""Start-up failures end in one line naming the setting to fix, within a few seconds,
with no traceback and no banner (issue 11: 6)."""

from __future__ import annotations

import asyncio
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from api import launch
from api.redis_server import free_port
from delivery.keys import Keyspace
from delivery.settings import Settings
from tests.serve_support import Serve, base_env, courier

pytestmark = pytest.mark.slow


@pytest.fixture
def silent_redis() -> Iterator[str]:
    """A TCP port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield f"redis://127.0.0.1:{s.getsockname()[1]}/0"


@pytest.mark.parametrize(
    ("kind", "says"),
    [
        ("not a url", "is not a Redis URL"),
        ("refused", "cannot connect to Redis at"),
        ("silent", "accepted the connection but did not answer PING within 2 s"),
    ],
)
@pytest.mark.parametrize("command", [["serve"], ["worker"], ["stats"], ["send", "a", "{}"]])
def test_a_bad_redis_is_one_line_within_seconds(
    tmp_path: Path, silent_redis: str, kind: str, says: str, command: list[str]
) -> None:
    url = {
        "not a url": "localhost:6379",
        "refused": f"redis://127.0.0.1:{free_port()}/0",
        "silent": silent_redis,
    }[kind]
    args = [*command, "--port", str(free_port())] if command == ["serve"] else command
    env = base_env(tmp_path / "data", COURIER_REDIS_URL=url, COURIER_JWT_SECRET="s" * 32)
    t0 = time.monotonic()
    proc = courier(*args, env=env, cwd=tmp_path, timeout=30)
    took = time.monotonic() - t0
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert took < 8, took
    assert "Courier on" not in proc.stdout and "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("courier: ") and says in lines[0], lines[0]
    assert "COURIER_REDIS_URL" in lines[0]


async def test_serve_on_a_configured_redis_says_which(
    tmp_path: Path, redis_url: str, keyspace: Keyspace, r: aioredis.Redis
) -> None:
    s = Serve(
        tmp_path / "data",
        COURIER_REDIS_URL=redis_url,
        COURIER_KEY_PREFIX=keyspace.prefix,
        COURIER_PARTITIONS=str(keyspace.partitions),
    )
    await asyncio.to_thread(s.start)
    try:
        said = [line for line in s.lines if line.startswith("Redis ")]
        assert len(said) == 1 and said[0].endswith(f" at {redis_url} (COURIER_REDIS_URL)."), s.lines
        banner = next(i for i, line in enumerate(s.lines) if line.startswith("Courier on"))
        assert s.lines.index(said[0]) < banner
        assert not (tmp_path / "data" / "redis").exists()  # no embedded Redis
    finally:
        assert await asyncio.to_thread(s.stop) == 0


def test_the_banner_names_the_command_as_this_terminal_runs_it(tmp_path: Path) -> None:
    """After ./scripts/serve no venv is active: the banner's hints say .venv/bin/courier."""
    exe = tmp_path / ".venv" / "bin" / "courier"
    assert launch.command_name(str(exe), cwd=str(tmp_path)) == ".venv/bin/courier"
    assert launch.command_name(str(exe), cwd=str(tmp_path / "elsewhere")) == str(exe)
    on_path = shutil.which("courier")
    if on_path:
        assert launch.command_name(on_path, cwd=str(tmp_path)) == "courier"
    text = launch.banner(Settings(), ".venv/bin/courier")
    assert "Try:  .venv/bin/courier token alice " in text
    assert "      .venv/bin/courier token backend --role service " in text
