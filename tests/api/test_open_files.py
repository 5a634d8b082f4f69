"""`courier serve` lifts its open-file limit (one descriptor per WebSocket) and says so
when even the hard limit is below MAX_CONNECTIONS."""

from __future__ import annotations

import resource
import subprocess
import sys

import pytest

PROBE = """
import logging, resource, sys
logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(message)s")
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
from api.server import raise_open_files
print(raise_open_files(int(sys.argv[1])), hard)
"""


def probe(max_connections: int) -> tuple[int, int, str]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(max_connections)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    got, hard = (int(x) for x in out.stdout.split())
    return got, hard, out.stderr


def test_the_soft_limit_is_lifted_to_the_hard_one() -> None:
    got, hard, err = probe(100)
    assert got == hard or hard == resource.RLIM_INFINITY
    assert "open-file limit" not in err


def test_a_hard_limit_below_max_connections_is_reported() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        pytest.skip("no hard open-file limit here: nothing can be below it")
    _, _, err = probe(hard + 1)
    assert f"open-file limit {hard} is below MAX_CONNECTIONS ({hard + 1})" in err
