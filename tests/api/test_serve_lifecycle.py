"""`courier serve` with its embedded Redis, as a person runs it: Ctrl-C (SIGINT to the
whole foreground group), kill -9, two instances on one folder, a producer across a
restart, and a data folder that another Redis version wrote (issue 11: 1-5)."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from api.redis_server import RedisServer, choose_binary
from api.runtime import load_settings
from delivery.exceptions import NotConfigured
from delivery.producer import Producer, SyncProducer
from delivery.settings import Settings
from tests.serve_support import (
    Serve,
    alive,
    base_env,
    courier,
    only_62_path,
    redis_servers_on,
    wait_dead,
    wait_status,
)

pytestmark = pytest.mark.slow


def sent_id(s: Serve, user: str, payload: object) -> str:
    proc = s.cli("send", user, orjson.dumps(payload).decode(), "--json")
    assert proc.returncode == 0, proc.stderr
    return str(orjson.loads(proc.stdout)["id"])


def cli_json(s: Serve, *args: str) -> dict:  # type: ignore[type-arg]
    proc = s.cli(*args, "--json")
    assert proc.returncode == 0, proc.stderr
    return orjson.loads(proc.stdout)  # type: ignore[no-any-return]


async def test_ctrl_c_closes_with_1001_hands_back_and_stops_redis_last(tmp_path: Path) -> None:
    s = Serve(tmp_path / "data").start()
    redis_pid = s.redis_pid()
    async with connect(f"{s.ws_url}?token={s.token('alice')}", open_timeout=5) as ws:
        hello = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
        assert hello["type"] == "connected"
        mid = await asyncio.to_thread(sent_id, s, "alice", {"n": 1})
        frame = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
        assert frame["id"] == mid  # and never acked
        s.signal_group(signal.SIGINT)  # Ctrl-C in the terminal
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 15)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    assert await asyncio.to_thread(s.wait_exit) == 0, s.output
    assert "Traceback" not in s.output and "Error" not in s.output, s.output
    wait_dead(redis_pid)  # stopped, after the shutdown that needed it
    assert not (s.data_dir / "instance.json").exists()

    s.start()  # the next start: no ghost node, no dead connection, the message back
    stats = cli_json(s, "stats")
    assert stats["nodes_alive"] == 1 and len(stats["nodes"]) == 1, stats["nodes"]
    assert stats["connections"] == 0 and stats["online_users"] == 0
    m = wait_status(s, mid, "parked")
    assert "handed_back" in [e["event"] for e in m["timeline"]]
    assert s.stop() == 0


def test_kill_9_takes_the_embedded_redis_along(tmp_path: Path) -> None:
    s = Serve(tmp_path / "data").start()
    first = s.redis_pid()
    assert s.proc is not None
    s.proc.kill()  # kill -9 of courier serve alone
    s.wait_exit()
    wait_dead(first, within=10)  # PR_SET_PDEATHSIG: no orphan
    s.start()
    assert redis_servers_on(s.data_dir / "redis") == [s.redis_pid()]
    assert s.stop() == 0
    assert redis_servers_on(s.data_dir / "redis") == []


def test_a_redis_left_running_on_the_folder_is_stopped_never_doubled(tmp_path: Path) -> None:
    s = Serve(tmp_path / "data").start()
    mid = sent_id(s, "bob", {"kept": True})
    port = int(s.instance()["redis_url"].rsplit(":", 1)[1].split("/")[0])
    assert s.stop() == 0
    # What a killed Courier without PR_SET_PDEATHSIG (or its watchdog) would leave:
    # a redis-server on the folder whose parent is gone.
    redis_dir = s.data_dir / "redis"
    left = subprocess.Popen(
        RedisServer(redis_dir, port=port, binary=choose_binary().path).command(),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not (redis_dir / "redis.pid").exists() or redis_servers_on(redis_dir) != [left.pid]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    s.start()
    left.wait(10)  # stopped by the new serve before it started its own
    assert f"Stopped a redis-server (pid {left.pid})" in s.output
    assert redis_servers_on(redis_dir) == [s.redis_pid()]
    wait_status(s, mid, "parked")
    assert s.stop() == 0


def test_the_watchdog_stops_redis_where_prctl_is_not_used(tmp_path: Path) -> None:
    code = (
        "import sys, time\n"
        "from api.redis_server import RedisServer\n"
        f"s = RedisServer({str(tmp_path / 'r')!r}, watchdog=True).start()\n"
        "print(s.proc.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    owner = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert owner.stdout is not None
    redis_pid = int(owner.stdout.readline())
    assert alive(redis_pid)
    owner.kill()
    owner.wait(10)
    wait_dead(redis_pid, within=10)


def test_a_second_instance_is_refused_and_touches_nothing(tmp_path: Path) -> None:
    first = Serve(tmp_path / "data").start()
    files = ["instance.json", "courier.lock", "jwt.secret", "redis/embedded.json"]
    before = {f: (first.data_dir / f).read_bytes() for f in files}
    second = Serve(tmp_path / "data").start(wait=False)  # same folder, another port
    assert second.wait_exit() == 1
    assert second.lines == [
        f"courier: another courier serve (pid {first.proc.pid}) runs on the data folder "  # type: ignore[union-attr]
        f"{first.data_dir}: stop it, or set COURIER_DATA_DIR to another folder"
    ], second.output
    busy = Serve(tmp_path / "other", port=first.port).start(wait=False)  # busy port
    assert busy.wait_exit() == 1
    assert len(busy.lines) == 1 and f"cannot listen on 127.0.0.1:{first.port}" in busy.output
    assert not (tmp_path / "other" / "redis").exists()  # nothing was started

    assert {f: (first.data_dir / f).read_bytes() for f in files} == before
    assert redis_servers_on(first.data_dir / "redis") == [first.redis_pid()]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    sent = first.cli("send", "carol", '{"n": 1}', cwd=elsewhere)  # another working dir
    assert sent.returncode == 0, sent.stderr
    assert sent.stderr.strip() == (
        f"courier: using Redis {first.instance()['redis_version']} at "
        f"{first.instance()['redis_url']} (embedded, courier serve pid {first.proc.pid}, "  # type: ignore[union-attr]
        f"data folder {first.data_dir})"
    )
    assert first.stop() == 0

    for args in (["send", "carol", "{}"], ["stats"], ["status", "1-00"], ["dlq", "list"]):
        gone = first.cli(*args, cwd=elsewhere)
        assert gone.returncode == 1 and gone.stdout == ""
        assert gone.stderr == (
            f"courier: no courier serve runs on the data folder {first.data_dir} and "
            "COURIER_REDIS_URL is not set: start `courier serve` (with the same "
            "COURIER_DATA_DIR), or set COURIER_REDIS_URL\n"
        )


def test_producers_never_guess_a_redis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COURIER_DATA_DIR", str(tmp_path / "none"))
    for cls in (Producer, SyncProducer):
        with pytest.raises(NotConfigured, match="COURIER_REDIS_URL"):
            cls.from_settings(Settings())  # type: ignore[attr-defined]
    from api.instance import InstanceError

    with pytest.raises(InstanceError, match="no courier serve runs"):
        load_settings()


async def test_a_producer_reconnects_across_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = Serve(tmp_path / "data").start()
    url = s.instance()["redis_url"]
    monkeypatch.setenv("COURIER_DATA_DIR", str(s.data_dir))
    producer = Producer.from_settings(load_settings())  # the README's way
    try:
        first = await producer.send("alice", {"n": 1})
        async with producer.task("export-7", user_id="alice", total=2) as task:
            await task.increment(message="page 1 of 2")
            assert await asyncio.to_thread(s.stop) == 0
            await asyncio.to_thread(s.start)
            assert s.instance()["redis_url"] == url  # the same address
            await task.increment(message="page 2 of 2")  # the same producer
        second = await producer.send("alice", {"n": 2})
        got = await producer.get_task("export-7", "alice")
        assert got["status"] == "completed" and got["progress"] == 100, got
    finally:
        await producer.aclose()
    for mid in (first.id, second.id):
        wait_status(s, mid, "parked")
    assert s.stop() == 0

    taken = socket.socket()  # another program on the kept port: refused in one line
    taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    taken.bind(("127.0.0.1", int(url.rsplit(":", 1)[1].split("/")[0])))
    taken.listen()
    try:
        s.start(wait=False)
        assert s.wait_exit() == 1
        assert len(s.lines) == 1 and "is taken by another program" in s.output, s.output
    finally:
        taken.close()


def test_the_newest_redis_serves_the_folder_whatever_the_path_order(tmp_path: Path) -> None:
    bin62 = only_62_path(tmp_path)
    system = str(Path(choose_binary("/usr/bin:/bin").path).parent)
    assert choose_binary(f"{bin62}:{system}").version >= (7,)  # an activated venv
    assert choose_binary(f"{system}:{bin62}").version >= (7,)

    data = tmp_path / "data"
    s = Serve(data, PATH=f"{system}:/bin").start()
    mid = sent_id(s, "dora", {"parked": True})
    assert s.stop() == 0
    s = Serve(data, PATH=f"{bin62}:{system}:/bin").start()  # 6.2 first on PATH
    assert s.instance()["redis_version"].startswith("7.")
    wait_status(s, mid, "parked")  # not vanished
    assert s.stop() == 0
    record = json.loads((data / "redis" / "embedded.json").read_text())
    assert record["redis_version"].startswith("7.")


def test_a_folder_of_another_major_version_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    s = Serve(data).start()
    written = s.instance()["redis_version"]
    assert written.startswith("7.")
    assert s.stop() == 0
    before = sorted(p.name for p in (data / "redis").iterdir())
    old = Serve(data, PATH=only_62_path(tmp_path)).start(wait=False)  # only 6.2 found
    assert old.wait_exit() == 1
    assert len(old.lines) == 1, old.output
    assert f"written by Redis {written}" in old.output and "is Redis 6.2." in old.output
    assert sorted(p.name for p in (data / "redis").iterdir()) == before  # no 6.2 AOF


def test_cli_from_any_folder_and_settings_for_scripts(tmp_path: Path) -> None:
    s = Serve(tmp_path / "data").start()
    try:
        env = base_env(s.data_dir)
        proc = courier("stats", "--json", env=env, cwd=Path("/"))
        assert proc.returncode == 0, proc.stderr
        assert s.instance()["redis_url"] in proc.stderr
        assert json.loads(proc.stdout)["nodes_alive"] == 1
    finally:
        assert s.stop() == 0
