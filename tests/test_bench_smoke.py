"""``courier bench``: every scenario at a tiny size, end to end, as a user runs it.

Each scenario starts its own redis-server, servers and load generators; the test
checks the JSON object of the last line (the documented keys, nothing lost where
Courier promises it) and that the table was printed. The commands run from an empty
folder, so the top-level bench/ package is found as installed, not from the checkout.

Without the bench/ package (the Docker image) or without the `bench` extra,
``courier`` still works and ``courier bench`` says in one line how to install it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

COURIER = str(Path(sys.executable).with_name("courier"))

KEYS = {
    "scenario",
    "users",
    "messages",
    "throughput_msgs_per_s",
    "latency_ms",
    "lost",
    "duplicates",
    "connect_success_rate",
    "cpu_seconds",
    "rss_mb",
}

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _run_in_an_empty_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def bench(*args: str, timeout: float = 100) -> dict:
    proc = subprocess.run(
        [COURIER, "bench", *args, "--json", "--quiet"],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert "courier bench" in proc.stdout  # the table came first
    body = orjson.loads(lines[-1])
    assert KEYS <= body.keys()
    assert set(body["latency_ms"]) == {"p50", "p95", "p99", "max"}
    return body


def test_enqueue_reports_producer_and_bare_rates() -> None:
    # 5,000: Redis's CPU time moves in 10 ms ticks, and 1,000 enqueues took ~10 ms of it
    # (0.0 in about one run out of three, before and after issue 11's changes)
    body = bench("enqueue", "--messages", "5000", "--users", "20")
    assert body["scenario"] == "enqueue" and body["messages"] == 5000
    assert body["throughput_msgs_per_s"] > 0 and body["bare_xadd_msgs_per_s"] > 0
    assert body["ratio_to_bare"] == pytest.approx(
        body["throughput_msgs_per_s"] / body["bare_xadd_msgs_per_s"], rel=0.01
    )
    assert body["cpu_seconds"]["redis"] > 0


def test_e2e_delivers_every_message_once_and_marks_it_delivered() -> None:
    body = bench("e2e", "--users", "20", "--messages", "200")
    assert body["lost"] == 0 and body["duplicates"] == 0
    assert body["delivered"] == 200 and body["statuses"] == {"delivered": 200}
    assert body["connect_success_rate"] == 1.0
    assert 0 < body["latency_ms"]["p50"] <= body["latency_ms"]["max"]
    assert {"server", "redis", "loadgen"} <= body["cpu_seconds"].keys()
    assert body["rss_mb"]["server"] > 0


def test_peer_runs_beside_e2e_with_the_ratio() -> None:
    body = bench("peer", "--users", "20", "--messages", "200")
    assert body["scenario"] == "peer" and body["users"] == 20
    assert body["e2e_lost"] == 0
    assert body["ratio_e2e_to_peer"] == pytest.approx(
        body["e2e_throughput_msgs_per_s"] / body["throughput_msgs_per_s"], rel=0.01
    )


@pytest.mark.skipif(
    not (shutil.which("node") and shutil.which("npm")), reason="node and npm are not on PATH"
)
@pytest.mark.timeout(420)  # the first run installs the Node packages
def test_node_peer_gets_the_same_clients_and_messages() -> None:
    # Socket.IO 4.8 on Node (redis-adapter), a redis-emitter producer in its own process;
    # `npm ci` runs first when bench/node/node_modules is missing or stale.
    body = bench("peer", "--peer", "node", "--users", "20", "--messages", "200", timeout=400)
    assert body["scenario"] == "peer" and body["side"] == "node" and body["users"] == 20
    assert body["lost"] == 0 and body["duplicates"] == 0 and body["connect_success_rate"] == 1.0
    assert body["acked_at_server"] == 200 and body["emitted"] == 200
    assert {"server", "producer", "redis", "loadgen"} <= body["cpu_seconds"].keys()
    assert body["e2e_lost"] == 0
    assert body["ratio_e2e_to_peer"] == pytest.approx(
        body["e2e_throughput_msgs_per_s"] / body["throughput_msgs_per_s"], rel=0.01
    )


def test_all_peers_in_interleaved_rounds_give_ranges() -> None:
    if not (shutil.which("node") and shutil.which("npm")):
        pytest.skip("node and npm are not on PATH")
    body = bench("peer", "--peer", "all", "--rounds", "2", "--users", "20", "--messages", "200")
    summary = body["summary"]
    assert set(summary) == {"socketio", "node", "e2e"}
    for side in summary.values():
        t = side["throughput_msgs_per_s"]
        assert len(t["values"]) == 2 and 0 < t["min"] <= t["median"] <= t["max"]
        assert side["lost"]["max"] == 0
    runs = body["runs"]
    assert len(runs) == 6 and {r["round"] for r in runs} == {1, 2}
    # the order rotates: no side runs first in both rounds
    firsts = {r["round"]: r["side"] for r in runs if r["position"] == 1}
    assert firsts[1] != firsts[2]
    assert all(r["machine"]["other_cpu_s"] >= 0 for r in runs)


def test_raw_ceiling_delivers_the_same_frames() -> None:
    body = bench("raw", "--users", "20", "--messages", "200", "--no-compare")
    assert body["scenario"] == "raw" and body["lost"] == 0
    assert body["throughput_msgs_per_s"] > 0


def test_floor_sets_todays_scripts_against_the_floor() -> None:
    body = bench(
        "floor",
        *("--users", "20", "--messages", "400", "--rounds", "1"),
        *("--isolated", "600", "--cycle", "300", "--benchmark-requests", "2000"),
    )
    assert body["scenario"] == "floor" and body["lost"] == 0 and body["rounds"] == 1
    s = body["summary"]
    steps = s["floor_steps"]
    assert {"append", "record", "read", "sent", "inflight_add", "delivered", "retain"} <= set(steps)
    for name in ("append", "record", "sent", "delivered"):  # one each per message
        assert steps[name]["calls_per_msg"]["min"] == 1.0
        assert steps[name]["us_per_call"]["min"] > 0
    today = s["today"]
    for script in ("enqueue_many", "dispatch_many", "ack_many"):
        assert today[script]["script_us_per_msg"]["min"] > 0
        assert today[script]["commands"], script  # the commands it ran, charged to it
        lua = today[script]["lua_us_per_msg"]["min"]
        inner = today[script]["commands_in_scripts_us_per_msg"]["min"]
        assert lua + inner == pytest.approx(today[script]["script_us_per_msg"]["min"], abs=0.01)
    # today does more than the floor of the same messages
    assert s["floor_commands_us_per_msg"]["max"] < s["today_scripts_us_per_msg"]["min"]
    assert s["no_aof"]["floor_scripts_us_per_msg"]["min"] > 0  # (CPU ticks: 10 ms)
    # 400 messages may fit in one 10 ms tick of Redis's CPU clock: reported, maybe 0
    assert s["e2e"]["redis_cpu_us_per_msg"]["min"] >= 0
    run = body["runs"][0]
    assert {r["step"] for r in run["isolated"]["redis_benchmark"]} >= {"append", "status write"}


def test_connections_are_held_and_measured() -> None:
    body = bench("connections", "--connections", "200", "--hold", "1")
    assert body["connect_success_rate"] == 1.0
    assert body["connected"] == 200 and body["held_after_s"]["open"] == 200
    assert body["kb_per_connection"] > 0 and body["connects_per_s"] > 0


def test_drain_hands_over_the_whole_backlog() -> None:
    body = bench("drain", "--backlog", "200")
    assert body["lost"] == 0 and body["delivered"] == 200
    assert body["drain_seconds"] > 0


def test_overload_loses_nothing_in_courier() -> None:
    body = bench("overload", "--messages", "2000", "--users", "20", "--window", "30")
    assert body["lost"] == 0 and body["accepted"] == 2000
    assert body["delivered"] + body["still_held_in_redis"] == 2000
    assert body["healthz_errors"] == 0
    assert "peer_lost" in body


def courier_without(modules: tuple[str, ...], *args: str) -> subprocess.CompletedProcess[str]:
    """``courier ARGS`` in a process where importing these modules fails, as it does
    where they are not installed (a None entry in sys.modules: ModuleNotFoundError)."""
    code = (
        "import sys\n"
        f"for m in {modules!r}:\n"
        "    sys.modules[m] = None\n"
        "from api.cli import app\n"
        "app(prog_name='courier')\n"
    )
    env = {**os.environ, "COURIER_JWT_SECRET": "s" * 32}
    return subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=30
    )


def test_without_the_bench_package_courier_works_and_bench_says_how_to_install_it() -> None:
    helped = courier_without(("bench",), "--help")
    assert helped.returncode == 0, helped.stderr
    for command in ("serve", "worker", "token", "send", "status", "stats", "dlq", "bench"):
        assert f" {command} " in helped.stdout
    assert "not installed" in helped.stdout
    for args in (("bench",), ("bench", "e2e", "--users", "5"), ("bench", "e2e", "--help")):
        proc = courier_without(("bench",), *args)
        assert proc.returncode == 2 and proc.stdout == ""
        assert proc.stderr.count("\n") == 1  # one line
        assert "`bench` package is not installed" in proc.stderr
        assert "pip install -e '.[bench]'" in proc.stderr
    token = courier_without(("bench",), "token", "alice", "--json")
    assert token.returncode == 0, token.stderr
    assert orjson.loads(token.stdout)["user_id"] == "alice"


def test_without_the_extra_bench_refuses_before_starting_anything() -> None:
    proc = courier_without(("psutil", "matplotlib"), "bench", "e2e", "--users", "5")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1
    assert "missing: psutil, matplotlib" in proc.stderr
    assert "./scripts/bootstrap installs it" in proc.stderr
