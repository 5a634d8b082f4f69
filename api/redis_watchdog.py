"""``python -m api.redis_watchdog OWNER_PID REDIS_PID``: stop an embedded redis-server
once the Courier process that started it is gone.

Where ``PR_SET_PDEATHSIG`` is unavailable (not Linux, or Redis started from a thread
other than the main one) :class:`api.redis_server.RedisServer` starts this watchdog in a
session of its own. It polls its parent: when the owner dies (even by SIGKILL) the
watchdog is re-parented, and it sends Redis SIGTERM (a clean shutdown that writes the
AOF). It exits by itself once Redis is gone.
"""

from __future__ import annotations

import os
import signal
import sys
import time

POLL_SECONDS = 0.2


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def watch(owner: int, redis_pid: int, *, poll: float = POLL_SECONDS) -> int:
    while alive(redis_pid):
        if os.getppid() != owner or not alive(owner):
            try:
                os.kill(redis_pid, signal.SIGTERM)
            except ProcessLookupError:
                return 0
            return 0
        time.sleep(poll)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    owner, redis_pid = int(args[0]), int(args[1])
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return watch(owner, redis_pid)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
