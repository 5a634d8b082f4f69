"""Every curl command of the README, the docs and the examples, run as written by the
real curl against a real edge: each one gets a 2xx and the body its text promises.

Substitutions only for what the reader's machine has and the test's does not: the
edge's address (``localhost:8000`` / ``127.0.0.1:8000``), ``$SERVICE_TOKEN`` in the
environment, and ``courier`` (the installed command, pointed at the test's Redis and
secret). Many snippets leave out ``Content-Type`` (curl's ``-d`` then sends
``application/x-www-form-urlencoded``): the API reads a JSON body whatever it is
labelled.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sys
from pathlib import Path

import orjson
import pytest

from delivery.keys import Keyspace
from tests.api.conftest import SECRET, EdgeFactory, edge

__all__ = ["edge"]  # the fixture

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    *sorted((ROOT / "examples").glob("*.py")),
]

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


def snippets() -> list[tuple[str, str]]:
    """(where, command) for every curl command: its continuation lines (ending in a
    backslash) joined; in Python files, the comment or docstring lines it sits in."""
    found = []
    for path in SOURCES:
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            if not re.match(r"\s*(?:#\s*)?curl ", line):
                continue
            command = [line]
            while command[-1].endswith("\\"):
                command.append(lines[i + len(command)])
            if path.suffix == ".py":
                command = [re.sub(r"^\s*#?\s*", "", c) for c in command]
            found.append((f"{path.relative_to(ROOT)}:{i + 1}", "\n".join(command)))
    return found


def test_the_docs_have_curl_commands() -> None:
    where = {w.split(":")[0] for w, _ in snippets()}
    assert {"README.md", "docs/recipes.md", "examples/webhook_receiver.py"} <= where


async def test_every_curl_command_works_as_written(
    edge: EdgeFactory, redis_url: str, keyspace: Keyspace
) -> None:
    node = await edge()
    online, _ = await node.online("alice")
    venv_bin = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith("COURIER_")}
    env |= {
        "PATH": f"{venv_bin}:{env['PATH']}",
        "COURIER_REDIS_URL": redis_url,
        "COURIER_KEY_PREFIX": keyspace.prefix,
        "COURIER_JWT_SECRET": SECRET,
        "SERVICE_TOKEN": node.token("backend", role="service"),
    }
    host = f"127.0.0.1:{node.port}"
    for where, command in snippets():
        shell = re.sub(r"(?:localhost|127\.0\.0\.1):8000", host, command)
        shell = shell.replace("curl ", "curl -sS -o /dev/stdout -w '\\n%{http_code}' ", 1)
        proc = await asyncio.create_subprocess_exec(
            "bash",
            "-c",
            shell,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, f"{where}: {command}\n{err.decode()}"
        body, _, status = out.decode().rpartition("\n")
        assert status.startswith("2"), f"{where}: {command}\nanswered {status}: {body}"
        answer = orjson.loads(body)
        if "/v1/broadcast" in command:
            assert answer["connections"] >= 1, (where, answer)
            frame = await online.recv_type("broadcast")
            assert frame["payload"] == {"text": "maintenance at 22:00"}
        else:
            assert "/v1/messages" in command, where
            message = await node.message(answer["id"])
            assert message["user_id"] == "alice" and message["status"] != "dead", (where, message)
