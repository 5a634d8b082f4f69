"""./scripts/test leaves nothing behind in the Redis it used: a subset of the suite run
against a Redis holding a key that is not the suite's, which alone remains; and a test
that leaks on purpose fails the run, naming the key (issue 11: 9)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from api.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[1]
LEAK = os.environ.get("COURIER_TEST_LEAK_ON_PURPOSE") == "1"
SUBSET = [
    "tests/delivery/test_lifecycle.py",
    "tests/api/test_http_messages.py",
    "tests/api/test_ws_parking.py",
    "tests/api/test_nodes.py",
    "tests/api/test_cli_admin.py",
    "tests/consumers/test_scheduler.py",
]

pytestmark = pytest.mark.slow


@pytest.mark.skipif(not LEAK, reason="the negative control of the test below")
def test_leaks_a_key_on_purpose(redis_url: str) -> None:
    redis.Redis.from_url(redis_url).set("leaked:on-purpose", 1)


def run_suite(url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        env={**os.environ, "COURIER_TEST_REDIS_URL": url, **env},
        capture_output=True,
        text=True,
        timeout=500,
    )


def test_the_suite_leaves_no_key_behind(tmp_path: Path) -> None:
    with RedisServer(tmp_path / "redis") as server:
        client = redis.Redis.from_url(server.url)
        client.set("sentinel:not-the-suites", "keep")
        proc = run_suite(server.url, *SUBSET)
        assert proc.returncode == 0, proc.stdout[-3000:]
        assert set(client.scan_iter()) == {b"sentinel:not-the-suites"}

        leak = run_suite(
            server.url,
            "tests/test_leftovers.py::test_leaks_a_key_on_purpose",
            COURIER_TEST_LEAK_ON_PURPOSE="1",
        )
        assert leak.returncode != 0, leak.stdout[-3000:]
        assert f"the tests left 1 keys in {server.url}: leaked:on-purpose" in leak.stdout
        client.close()
