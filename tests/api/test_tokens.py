"""Tokens the edge accepts: each configured algorithm with its own key (HS384 with the
secret, never with the public key), and a `sub` that cannot forge log lines or carry
characters Redis and JSON cannot (refused with 4401 / 401)."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import time
from pathlib import Path

import jwt
import pytest

from api.auth import AuthError, Verifier
from api.logs import TextFormatter
from delivery.settings import Settings
from tests.api.conftest import SECRET, EdgeFactory
from tests.processes import COURIER


def _token(sub: str, *, alg: str = "HS256", key: str = SECRET) -> str:
    return jwt.encode({"sub": sub, "exp": int(time.time()) + 60}, key, algorithm=alg)


def test_hs384_verifies_with_the_secret() -> None:
    v = Verifier(Settings(jwt_secret=SECRET, jwt_algorithm="HS384"))  # type: ignore[arg-type]
    assert v.verify(_token("ann", alg="HS384")).user_id == "ann"
    with pytest.raises(AuthError):
        v.verify(_token("ann", alg="HS256"))  # another algorithm is never taken


@pytest.mark.parametrize(
    "sub",
    ["eve\n10:00:00 INFO    api.ws: connected x user=admin", "a\rb", "a\u2028b", "{p1}", "x" * 201],
)
async def test_a_sub_that_could_forge_logs_is_refused(edge: EdgeFactory, sub: str) -> None:
    node = await edge()
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(TextFormatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)
    try:
        c = await node.connect(token=_token(sub))
        assert await c.closed() == 4401
        r = await node.http.get("/v1/tasks", headers={"Authorization": f"Bearer {_token(sub)}"})
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    lines = out.getvalue().splitlines()
    assert lines and all(line.startswith(("INFO ", "WARNING ")) for line in lines), lines
    assert not any("user=admin" in line for line in lines)


def test_text_logs_write_newlines_in_values_escaped() -> None:
    fmt = TextFormatter("%(message)s")
    record = logging.LogRecord("x", logging.INFO, "f", 1, "user=%s", ("a\nFORGED",), None)
    assert fmt.format(record) == "user=a\\nFORGED"


@pytest.mark.parametrize(
    ("command", "env"),
    [
        ("serve", {"COURIER_JWT_ALGORITHM": "none"}),
        ("serve", {"COURIER_JWT_ALGORITHM": "HS384", "COURIER_JWT_PUBLIC_KEY": "-----BEGIN"}),
        ("worker", {"COURIER_HEARTBEAT_TIMEOUT_SECONDS": "1"}),
    ],
)
def test_settings_that_make_no_sense_stop_the_command_in_one_line(
    command: str, env: dict[str, str], tmp_path: Path
) -> None:
    full = {k: v for k, v in os.environ.items() if not k.startswith("COURIER_")}
    full.update({"COURIER_DATA_DIR": str(tmp_path), "COURIER_JWT_SECRET": SECRET, **env})
    done = subprocess.run([COURIER, command], env=full, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("courier: COURIER_"), done.stderr
