"""The JavaScript client (clients/js): its unit tests (Node's test runner against an
in-process WebSocket server, plus tsc on the types) and its browser suite (Debian's
Chromium through playwright-core, against a real `courier serve` and a private Redis).

`npm ci` runs first when node_modules is missing or package-lock.json changed since the
last install. Skipped only when node or npm is missing; a missing Chromium fails the
browser suite with a message saying how to install it (./scripts/test installs it).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "clients" / "js"
STAMP = PACKAGE / "node_modules" / ".courier-lock.sha256"

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or shutil.which("npm") is None,
    reason="node and npm are not installed: the JavaScript client's tests need Node 20+",
)


@dataclass
class Run:
    code: int
    output: str

    def count(self, what: str) -> int:
        """A TAP summary count (`# pass 41`) of Node's test runner."""
        m = re.search(rf"^# {what} (\d+)$", self.output, re.M)
        return int(m.group(1)) if m else -1

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.output.splitlines()[-lines:])


def _npm(*args: str, timeout: float) -> Run:
    env = {k: v for k, v in os.environ.items() if k not in ("NODE_OPTIONS", "FORCE_COLOR")}
    env["COURIER_VENV"] = str(ROOT / ".venv")
    proc = subprocess.run(
        ["npm", *args],
        cwd=PACKAGE,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Run(proc.returncode, proc.stdout + proc.stderr)


@pytest.fixture(scope="module")
def installed() -> None:
    """`npm ci` when node_modules is missing or the lock file changed."""
    lock = hashlib.sha256((PACKAGE / "package-lock.json").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text().strip() == lock:
        return
    run = _npm("ci", "--no-audit", "--no-fund", timeout=600)
    assert run.code == 0, f"npm ci failed:\n{run.tail()}"
    STAMP.write_text(lock + "\n")


@pytest.fixture(scope="module")
def browser_run(installed: None) -> Run:
    return _npm("run", "test:browser", timeout=600)


def test_unit_tests_and_types(installed: None) -> None:
    run = _npm("test", timeout=300)
    assert run.code == 0, f"npm test failed:\n{run.tail()}"
    assert run.count("fail") == 0 and run.count("pass") >= 30, run.tail()


def test_browser_suite(browser_run: Run) -> None:
    assert browser_run.code == 0, f"npm run test:browser failed:\n{browser_run.tail(80)}"
    assert browser_run.count("fail") == 0 and browser_run.count("pass") >= 10, browser_run.tail()


def test_refresh_in_a_real_browser(browser_run: Run) -> None:
    """Token refresh against the real server, which answers the refresh frame: the
    scenario must run and pass (its own probe skipping it would hide a regression)."""
    lines = browser_run.output.splitlines()
    scenario = re.compile(r"(not )?ok \d+ - refresh keeps the socket")
    line = next((ln for ln in lines if scenario.match(ln)), "")
    assert line, f"the refresh scenario did not run:\n{browser_run.tail()}"
    assert "# SKIP" not in line, f"the refresh scenario was skipped: {line}"
    assert line.startswith("ok "), line
