"""/metrics parsed with prometheus-client's parser: counters and histograms move by
what happened, Redis gauges match the deployment; the alert rules and the dashboard
only use metrics that exist, and promtool accepts the rules and their unit tests."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
import yaml
from prometheus_client.parser import text_string_to_metric_families

from api.redis_server import RedisServer, choose_binary, free_port
from delivery.keys import Keyspace
from tests.api.admin_support import QUICK, bearer, kill_message
from tests.api.conftest import SECRET, EdgeFactory, Node, start_edge

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "ops" / "prometheus" / "alerts.yml"
ALERT_TESTS = ROOT / "ops" / "prometheus" / "alerts_test.yml"
DASHBOARD = ROOT / "ops" / "grafana" / "courier.json"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gauge": ("",),
}


async def scrape(node: Node) -> tuple[str, Samples]:
    r = await node.http.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return r.text, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels` (0 when none)."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


def metric_names(text: str) -> set[str]:
    """Every sample name a query may use, families without samples included."""
    names = set()
    for family in text_string_to_metric_families(text):
        for suffix in _SUFFIXES.get(family.type, ("",)):
            names.add(family.name + suffix)
        names.update(s.name for s in family.samples)
    return names


def used_metrics(expr: str) -> set[str]:
    return set(re.findall(r"\bcourier_[a-z_]+\b", expr))


async def test_metrics_count_what_happened(edge: EdgeFactory) -> None:
    node = await edge(**QUICK)
    c, _ = await node.online("alice")
    _, before = await scrape(node)

    ok = [await node.send("alice", {"n": i}, priority=p) for i, p in enumerate(["high", "low"])]
    got = await c.messages(2)
    assert {f["id"] for f in got} == set(ok)
    await c.ack(*ok)
    for mid in ok:
        await node.wait_status(mid, "delivered")
    await kill_message(node, c, "alice", {"n": 3})  # normal priority, never acked
    parked = await node.send("bob", {"n": 4})
    await node.wait_status(parked, "parked")

    _, after = await scrape(node)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("courier_enqueued_total") == 4
    assert [delta("courier_enqueued_total", priority=p) for p in ("high", "normal", "low")] == [
        1,
        2,
        1,
    ]
    assert delta("courier_delivered_total") == 2
    assert delta("courier_delivered_total", priority="high") == 1
    assert delta("courier_delivered_total", priority="normal") == 0
    assert delta("courier_dead_total", reason="ack_timeout") == 1
    assert delta("courier_retries_total", result="dead") == 1
    assert delta("courier_retries_total", result="scheduled") == 1
    assert delta("courier_dispatched_total", outcome="parked", priority="normal") == 1
    assert delta("courier_enqueue_to_ack_seconds_count") == 2
    assert delta("courier_deliver_to_ack_seconds_count") == 2
    assert delta("courier_enqueue_to_deliver_seconds_count") == 3  # first pushes only
    assert delta("courier_disconnects_total") == 0

    # Gauges read from Redis at scrape time.
    assert value(after, "courier_redis_up") == 1
    assert 0 <= value(after, "courier_redis_ping_seconds") < 1
    assert value(after, "courier_dead_letters") == 1
    assert value(after, "courier_parked_messages") == 1
    assert value(after, "courier_online_users") == 1
    assert value(after, "courier_node_connections", node=node.rt.node_id) == 1
    assert value(after, "courier_connections") >= 1
    assert value(after, "courier_consumers_alive") >= 1
    assert value(after, "courier_consumers_running") == 1
    assert value(after, "courier_stream_pending") == 0  # nothing in flight
    assert value(after, "courier_consumer_lag", partition="0", priority="high") == 0
    assert len([k for k in after if k[0] == "courier_stream_length"]) == 4 * 3
    deadline = time.monotonic() + 5  # acknowledged entries leave with the next trim
    while value(after, "courier_stream_length") != 0:
        assert time.monotonic() < deadline, "the streams were not trimmed"
        await asyncio.sleep(0.1)
        _, after = await scrape(node)


async def test_metrics_say_when_redis_is_unreachable(edge: EdgeFactory) -> None:
    node = await edge()
    rt = node.rt
    healthy = rt.redis
    broken = type(healthy).from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    rt.redis = rt.producer.redis = broken
    try:
        _, samples = await scrape(node)
        stats = await node.http.get("/v1/stats", headers=bearer(node, "admin"))
        enqueue = await node.http.post(
            "/v1/messages", json={"user_id": "a", "payload": 1}, headers=bearer(node, "service")
        )
    finally:
        rt.redis = rt.producer.redis = healthy
        await broken.aclose()
    assert value(samples, "courier_redis_up") == 0
    assert value(samples, "courier_redis_errors_total", loop="metrics") >= 1
    assert not [k for k in samples if k[0] == "courier_stream_length"]
    for resp in (stats, enqueue):  # the API says so too, as JSON
        assert resp.status_code == 503, resp.text
        assert resp.json()["error"]["code"] == "redis_unavailable"
    _, samples = await scrape(node)
    assert value(samples, "courier_redis_up") == 1


async def test_alerts_and_dashboard_use_existing_metrics(edge: EdgeFactory) -> None:
    node = await edge()
    known = metric_names((await scrape(node))[0])
    rules = yaml.safe_load(ALERTS.read_text())
    alerts = [rule for group in rules["groups"] for rule in group["rules"]]
    names = {a["alert"] for a in alerts}
    assert {
        "CourierDeliverySuccessLow",
        "CourierAbnormalDisconnects",
        "CourierRedisDown",
        "CourierRedisErrors",
        "CourierRedisSlow",
        "CourierDeadLettersGrowing",
        "CourierConsumerLagGrowing",
    } <= names
    for a in alerts:
        used = used_metrics(a["expr"])
        assert used, a["alert"]
        assert used <= known, (a["alert"], used - known)
        assert a["labels"]["severity"] in ("warning", "critical")
        assert a["annotations"]["summary"] and a["annotations"]["description"]

    dash = json.loads(DASHBOARD.read_text())
    panels = [p for p in dash["panels"] if p["type"] != "row"]
    exprs = [t["expr"] for p in panels for t in p["targets"]]
    for expr in exprs:
        assert used_metrics(expr) <= known, (expr, used_metrics(expr) - known)
    everything = " ".join(exprs)
    for needed in (
        "courier_enqueued_total",
        "courier_delivered_total",
        "_bucket",
        "courier_stream_length",
        "courier_consumer_lag",
        "courier_connections",
        "courier_dead_letters",
        "courier_parked_messages",
        "histogram_quantile",
    ):
        assert needed in everything, needed
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))


def promtool() -> str:
    """promtool, which ./scripts/test installs when missing: these tests never skip."""
    found = shutil.which("promtool")
    if found is None:
        pytest.fail(
            "promtool not installed: ./scripts/test installs it (apt-get install prometheus)"
        )
    return found


def test_promtool_accepts_the_rules_and_their_unit_tests() -> None:
    check = subprocess.run(
        [promtool(), "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS" in check.stdout
    test = subprocess.run(
        [promtool(), "test", "rules", ALERT_TESTS.name],
        cwd=ALERT_TESTS.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert test.returncode == 0, test.stdout + test.stderr


async def test_a_worker_process_is_its_own_scrape_target(
    redis_url: str, keyspace: Keyspace, r: aioredis.Redis, tmp_path: Path
) -> None:
    """(`r`: the worker's consumer groups are deleted with the test's other keys.)"""
    port = free_port()
    env = {
        **os.environ,
        "COURIER_REDIS_URL": redis_url,
        "COURIER_KEY_PREFIX": keyspace.prefix,
        "COURIER_PARTITIONS": "4",
        "COURIER_JWT_SECRET": SECRET,
        "COURIER_DATA_DIR": str(tmp_path),
        "COURIER_METRICS_PORT": str(port),
        "COURIER_LOG_LEVEL": "WARNING",
    }
    cmd = [sys.executable, "-c", "from api.cli import app; app(prog_name='courier')", "worker"]
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once, polled without blocking
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 20
        async with httpx.AsyncClient(timeout=2) as http:
            while True:
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                try:
                    resp = await http.get(f"http://127.0.0.1:{port}/metrics")
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "the worker never served /metrics"
                    await asyncio.sleep(0.1)
        names = metric_names(resp.text)
        assert {
            "courier_retries_total",
            "courier_dispatched_total",
            "courier_dead_total",
            "courier_enqueue_to_deliver_seconds_bucket",
        } <= names
        assert "courier_stream_length" not in names  # Redis gauges come from the edges
    finally:
        proc.terminate()
        proc.wait(timeout=15)


NO_CONSUMERS_TEST = """
rule_files: [{rules}]
evaluation_interval: 1m
tests:
  - name: consumers as scraped from an idle Redis
    interval: 1m
    input_series:
      - series: 'courier_consumers_alive{{instance="edge-1"}}'
        values: "{value}x30"
    alert_rule_test:
      - eval_time: 30m
        alertname: CourierNoConsumers
        exp_alerts: {expected}
"""


def no_consumers_fires(value: float, tmp_path: Path) -> bool:
    """Whether CourierNoConsumers fires on half an hour of this scraped value."""
    rule = next(
        rule
        for group in yaml.safe_load(ALERTS.read_text())["groups"]
        for rule in group["rules"]
        if rule["alert"] == "CourierNoConsumers"
    )
    firing = [{"exp_labels": rule["labels"], "exp_annotations": rule["annotations"]}]
    results = []
    for expected in ("[]", json.dumps(firing)):
        f = tmp_path / "scraped_test.yml"
        f.write_text(NO_CONSUMERS_TEST.format(rules=ALERTS, value=value, expected=expected))
        proc = subprocess.run(
            [promtool(), "test", "rules", str(f)], capture_output=True, text=True, timeout=60
        )
        results.append(proc.returncode == 0)
    assert results.count(True) == 1, results
    return results[1]


async def test_consumers_are_alive_on_an_idle_redis_70(tmp_path: Path, keyspace: Keyspace) -> None:
    binary = choose_binary()
    assert binary.major >= 7, f"this test needs Redis 7 (found {binary.path} {binary.version})"
    with RedisServer(tmp_path / "redis", binary=binary.path) as server:
        node = await start_edge(
            server.url,
            keyspace,
            claim_idle_seconds=0.3,  # what XINFO idle times were held against
            read_block_ms=50,
            consumer_heartbeat_seconds=0.1,
        )
        try:
            await asyncio.sleep(1.5)  # a quiet night: nothing enqueued, readers blocked
            _, samples = await scrape(node)
            assert value(samples, "courier_consumers_alive") == 1
            assert value(samples, "courier_consumers_running") == 1
            stats = (await node.http.get("/v1/stats", headers=bearer(node, "admin"))).json()
            assert [c["name"] for c in stats["consumers"] if c["alive"]] == [node.rt.node_id]
            assert not no_consumers_fires(value(samples, "courier_consumers_alive"), tmp_path)

            rt = node.rt
            assert rt.consumers is not None
            await rt.consumers.stop()  # the consumers are gone: the alert must fire
            _, samples = await scrape(node)
            assert value(samples, "courier_consumers_alive") == 0
            assert no_consumers_fires(value(samples, "courier_consumers_alive"), tmp_path)
        finally:
            await node.stop()
