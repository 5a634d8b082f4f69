"""The data folder of one Courier instance, its lock, and how every command finds the
running instance there.

``COURIER_DATA_DIR`` (default per user: ``$XDG_DATA_HOME/courier``, else
``~/.local/share/courier``) is made absolute once (``delivery/settings.py``), so every
command finds the same folder from any working directory. It holds::

    courier.lock     flock()ed by the running `courier serve`; holds its pid; never deleted
    instance.json    what that serve runs: pid, redis_url, redis binary and version, http
                     (written once its Redis answers, removed by it at exit)
    jwt.secret       the generated HS256 secret, when COURIER_JWT_SECRET is unset
    redis/           the embedded Redis (api/embedded.py): AOF, redis.log, redis.pid,
                     embedded.json (its port and version, kept across restarts)

A command that needs Redis (:func:`resolve_redis`) takes ``COURIER_REDIS_URL`` when it
is set, else the Redis of the instance whose lock is held, else fails in one line: it
never falls back to a Redis that happens to answer on the default port.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from delivery import clock

log = logging.getLogger(__name__)

LOCK_WAIT_SECONDS = 1.0  # a command probing the lock holds it for microseconds
STARTING_WAIT_SECONDS = 3.0


class InstanceError(RuntimeError):
    """A one-line reason why a command cannot run, naming what to change."""


@dataclass(frozen=True)
class Instance:
    """What a running ``courier serve`` recorded in its data folder."""

    pid: int
    redis_url: str
    data_dir: str
    redis_binary: str = ""
    redis_version: str = ""
    http: str = ""

    def describe(self) -> str:
        return f"embedded, courier serve pid {self.pid}, data folder {self.data_dir}"


class DataFolder:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).absolute()

    @property
    def lock_file(self) -> Path:
        return self.path / "courier.lock"

    @property
    def instance_file(self) -> Path:
        return self.path / "instance.json"

    @property
    def secret_file(self) -> Path:
        return self.path / "jwt.secret"

    @property
    def redis_dir(self) -> Path:
        return self.path / "redis"

    def read_instance(self) -> Instance | None:
        try:
            data: dict[str, Any] = json.loads(self.instance_file.read_text())
            return Instance(**data)
        except (OSError, ValueError, TypeError):
            return None

    def locked_by(self) -> int | None:
        """The pid written in the lock file (by its holder), if any."""
        try:
            return int(self.lock_file.read_text().strip() or 0) or None
        except (OSError, ValueError):
            return None

    def is_locked(self) -> bool:
        """Whether a `courier serve` holds this folder's lock (probed, never kept)."""
        if not self.lock_file.exists():
            return False
        try:
            fd = os.open(self.lock_file, os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # closing drops the probe's own lock
        return False

    def running(self) -> Instance | None:
        """The instance serving this folder, or None when no `courier serve` holds it."""
        deadline = clock.monotonic() + STARTING_WAIT_SECONDS
        while self.is_locked():
            inst = self.read_instance()
            if inst is not None:
                return inst
            if clock.monotonic() > deadline:  # locked, and its Redis never came up
                pid = self.locked_by()
                raise InstanceError(
                    f"courier serve (pid {pid}) holds the data folder {self.path} but has "
                    "not started its Redis; wait for it, or look at its output"
                )
            time.sleep(0.05)
        return None

    def lock(self) -> FolderLock:
        return FolderLock(self)


class FolderLock:
    """The exclusive flock() of one data folder, held by `courier serve` for its life.

    Refused in one line when another process holds it; that process's files are
    never touched (the lock file is opened without truncating it)."""

    def __init__(self, folder: DataFolder) -> None:
        self.folder = folder
        self.fd: int | None = None

    def acquire(self) -> FolderLock:
        self.folder.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder.lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = clock.monotonic() + LOCK_WAIT_SECONDS
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if clock.monotonic() > deadline:
                    os.close(fd)
                    pid = self.folder.locked_by()
                    raise InstanceError(
                        f"another courier serve (pid {pid}) runs on the data folder "
                        f"{self.folder.path}: stop it, or set COURIER_DATA_DIR to another "
                        "folder"
                    ) from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return self

    def record(self, instance: Instance) -> None:
        """Publish what this instance runs, for the other commands (atomic replace)."""
        tmp = self.folder.instance_file.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(instance.__dict__, indent=2) + "\n")
        tmp.replace(self.folder.instance_file)

    def release(self) -> None:
        if self.fd is None:
            return
        inst = self.folder.read_instance()
        if inst is not None and inst.pid == os.getpid():
            with contextlib.suppress(OSError):
                self.folder.instance_file.unlink()
        os.close(self.fd)  # drops the lock; the file stays (deleting it would race)
        self.fd = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def shown_url(url: str) -> str:
    """A Redis URL as it may be printed or logged: its password as ``***``."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def resolve_redis(redis_url: str | None, data_dir: str) -> tuple[str, str]:
    """The Redis URL a command uses and where it came from, for the user to see."""
    if redis_url:
        return redis_url, "COURIER_REDIS_URL"
    folder = DataFolder(data_dir)
    inst = folder.running()
    if inst is None:
        raise InstanceError(
            f"no courier serve runs on the data folder {folder.path} and COURIER_REDIS_URL "
            "is not set: start `courier serve` (with the same COURIER_DATA_DIR), or set "
            "COURIER_REDIS_URL"
        )
    return inst.redis_url, inst.describe()
