"""The embedded Redis of ``courier serve`` in its data folder (``<data>/redis``).

Started only while the folder's lock is held (``api/instance.py``), so two Courier
processes never run two redis-servers on one AOF:

1. The binary is the newest redis-server found (``api/redis_server.py``); the version
   that wrote the folder is kept in ``embedded.json``. A folder written by another
   major version is refused in one line naming both (Redis 6.2 cannot read 7's
   multi-part AOF and would start empty beside it).
2. A redis-server left running on the folder by a Courier that was killed (its pid in
   ``redis.pid``, its working directory the folder) is stopped first.
3. The port is chosen once and kept in ``embedded.json``: producers and clients running
   across a restart reconnect to the same address by themselves. A port taken by
   another program is refused in one line.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from delivery import clock

from .instance import InstanceError
from .redis_server import Binary, RedisServer, choose_binary, free_port, port_is_free

log = logging.getLogger(__name__)

RECORD = "embedded.json"


@dataclass(frozen=True)
class Record:
    port: int
    redis_version: str
    redis_binary: str

    @property
    def major(self) -> int:
        return int(self.redis_version.split(".")[0])


def read_record(redis_dir: Path) -> Record | None:
    try:
        data: dict[str, Any] = json.loads((redis_dir / RECORD).read_text())
        return Record(int(data["port"]), str(data["redis_version"]), str(data["redis_binary"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_record(redis_dir: Path, record: Record) -> None:
    tmp = redis_dir / (RECORD + ".tmp")
    tmp.write_text(json.dumps(record.__dict__, indent=2) + "\n")
    tmp.replace(redis_dir / RECORD)


def written_by_major(redis_dir: Path, record: Record | None) -> tuple[int, str] | None:
    """The major version (and its text) that wrote the folder's data, if any: the
    record, else the AOF's shape (7.0 writes a multi-part ``appendonlydir``)."""
    if record is not None:
        return record.major, record.redis_version
    if (redis_dir / "appendonlydir").is_dir():
        return 7, "7.x"
    if (redis_dir / "appendonly.aof").is_file():
        return 6, "6.x or older"
    return None


def check_version(redis_dir: Path, binary: Binary, record: Record | None) -> None:
    written = written_by_major(redis_dir, record)
    if written is not None and written[0] != binary.major:
        raise InstanceError(
            f"the data folder {redis_dir} was written by Redis {written[1]}, and the "
            f"redis-server found ({binary.path}) is Redis {binary.version_text}: run it with "
            f"a Redis {written[0]}.x again, or move the folder away to start empty"
        )


def _ours(pid: int, redis_dir: Path) -> bool:
    """Whether `pid` is a live redis-server working in `redis_dir` (Linux: /proc)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    proc = Path(f"/proc/{pid}")
    if not proc.exists():  # no /proc: trust the pid file written by redis itself
        return True
    try:
        cwd = Path(os.readlink(proc / "cwd"))
        cmdline = (proc / "cmdline").read_bytes()
    except OSError:
        return False
    return b"redis-server" in cmdline and cwd.resolve() == redis_dir.resolve()


def stop_leftover(redis_dir: Path, *, timeout: float = 10.0) -> int | None:
    """Stop a redis-server a killed Courier left running on this folder; its pid."""
    try:
        pid = int((redis_dir / "redis.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    if not _ours(pid, redis_dir):
        return None
    os.kill(pid, signal.SIGTERM)  # a clean shutdown: the AOF is written out
    deadline = clock.monotonic() + timeout
    while _ours(pid, redis_dir):
        if clock.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
    log.info("stopped redis-server pid %d left running on %s", pid, redis_dir)
    return pid


def start(
    redis_dir: Path, *, say: Callable[[str], None] = log.warning, watchdog: bool | None = None
) -> tuple[RedisServer, Binary]:
    """Start the folder's Redis (the caller holds the folder's lock); `say` tells the
    user about a leftover redis-server it stopped."""
    binary = choose_binary()
    record = read_record(redis_dir)
    check_version(redis_dir, binary, record)
    left = stop_leftover(redis_dir)
    if left is not None:
        say(f"Stopped a redis-server (pid {left}) a killed Courier left running on {redis_dir}.")
    port = record.port if record is not None else free_port()
    if not port_is_free(port):
        raise InstanceError(
            f"port {port} of the embedded Redis (kept in {redis_dir / RECORD}) is taken by "
            "another program: stop it, or delete that file to choose a new port"
        )
    server = RedisServer(redis_dir, port=port, binary=binary.path, watchdog=watchdog)
    try:
        server.start()
    except (RuntimeError, TimeoutError) as e:
        raise InstanceError(f"the embedded Redis did not start: {e}") from None
    write_record(redis_dir, Record(port, binary.version_text, binary.path))
    return server, binary
