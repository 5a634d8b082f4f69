"""Bounded fuzzing: schemathesis against `/openapi.json` of a real `courier serve`, with
a service and an admin token, finds no 5xx; a WebSocket frame fuzzer (hypothesis)
finds no frame that closes the sender's socket with 1011 (or any close but 4429/1009).

The default run takes about a minute. A longer one, e.g. before a release:

    COURIER_FUZZ_SECONDS=600 COURIER_FUZZ_EXAMPLES=5000 \\
        COURIER_TEST_IGNORE_LOCAL=1 ./scripts/test tests/api/test_fuzz.py

(``COURIER_FUZZ_SEED`` picks another schemathesis seed; the default is fixed, so the
default run is the same every time.)
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from api.auth import issue
from api.protocol import ClientFrame
from delivery.settings import Settings
from tests.api.conftest import EdgeFactory
from tests.processes import SECRET, ServeProc

pytestmark = pytest.mark.slow

SECONDS = int(os.environ.get("COURIER_FUZZ_SECONDS", "20"))
EXAMPLES = int(os.environ.get("COURIER_FUZZ_EXAMPLES", "300"))
SEED = os.environ.get("COURIER_FUZZ_SEED", "12")
SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))


@pytest.mark.parametrize("role", ["service", "admin"])
async def test_schemathesis_finds_no_server_error(
    proc: ServeProc, role: str, tmp_path: Path
) -> None:
    # no webhook dispatcher: the admin role may PUT endpoints with any URL the fuzzer makes
    # up, and nothing may be sent anywhere but loopback
    p = await proc("fuzz", COURIER_LOG_LEVEL="WARNING", COURIER_WEBHOOK_DELIVERY="false")
    token = issue(Settings(jwt_secret=SECRET), f"fuzz-{role}", role=role)
    cmd = [
        SCHEMATHESIS,
        "run",
        f"{p.url}/openapi.json",
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        "not_a_server_error",
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        str(EXAMPLES // 10),
        "--max-time",
        str(SECONDS),
        "--seed",
        SEED,
        "--workers",
        "1",  # 2 made schemathesis report "inconsistent results" of its own
    ]
    done = await asyncio.to_thread(  # in tmp_path: schemathesis keeps a cache where it runs
        subprocess.run,
        cmd,
        capture_output=True,
        text=True,
        timeout=SECONDS * 3 + 120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "Exception in ASGI application" not in p.log_text(), p.log_text()[-4000:]


# -- WebSocket frames -------------------------------------------------------------------

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
_deep = st.integers(min_value=200, max_value=1300).map(lambda n: "[" * n + "]" * n)
_field = _json.map(json.dumps) | _deep  # JSON text (json.dumps writes any integer)
_types = st.sampled_from([t.value for t in ClientFrame] + ["", "nope"]) | st.text(max_size=5)
_frame = st.fixed_dictionaries(
    {"type": _types.map(json.dumps)},
    optional={k: _field for k in ("id", "ids", "ts", "topic", "data", "task_id", "token")},
).map(lambda f: "{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in f.items()) + "}")
_frames = (
    _frame
    | st.text(max_size=200)
    | _deep
    | st.sampled_from(['{"type": "ping", "ts": NaN}', '{"type":"ack","id":1e999}', "\u0000"])
)


def _fuzz_frames(url: str) -> list[int]:
    """Send generated frames on one connection (a fresh one whenever it closes);
    the close codes seen."""
    closes: list[int] = []
    state: dict[str, Any] = {"ws": None}

    def ws() -> Any:
        if state["ws"] is None:
            state["ws"] = connect(url, open_timeout=5, max_size=None, legacy=True)
            assert orjson.loads(state["ws"].recv(timeout=5))["type"] == "connected"
        return state["ws"]

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(_frames)
    def one(frame: str) -> None:
        conn = ws()
        probe = {"type": "ping", "ts": "probe"}
        try:
            conn.send(frame)
            conn.send(orjson.dumps(probe).decode())
            while orjson.loads(conn.recv(timeout=5)) != {"type": "pong", "ts": "probe"}:
                pass
        except ConnectionClosed as e:
            code = e.rcvd.code if e.rcvd is not None else 1006
            closes.append(code)
            state["ws"] = None
            assert code in (4429, 1009), f"{frame[:300]!r} closed the socket with {code}"

    try:
        one()
    finally:
        if state["ws"] is not None:
            state["ws"].close()
    return closes


async def test_frame_fuzzer_never_closes_a_socket_with_1011(edge: EdgeFactory) -> None:
    node = await edge(rate_limit_per_second=100_000, rate_limit_burst=100_000)
    closes = await asyncio.to_thread(_fuzz_frames, f"{node.ws_url}?token={node.token('fz')}")
    assert 1011 not in closes
