"""The operators' console (console/): its page served by the edge from the installed
package with nothing from outside, the sign-in routes and `courier admin`'s one-time
link, the vendored libraries against the lock file, and the browser suite (Debian's
Chromium through playwright-core against a real `courier serve` and a private Redis).

`npm ci` runs first when node_modules is missing or package-lock.json changed since the
last install. Skipped only when node or npm is missing; a missing Chromium fails the
browser suite with a message saying how to install it (./scripts/test installs it).
"""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
import redis
import redis.asyncio as aioredis

from console import signin
from console.web import CSP
from delivery.keys import SIGN_IN_TTL_S, Keyspace
from tests.api.admin_support import bearer
from tests.api.conftest import SECRET, EdgeFactory

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "console"
STATIC = PACKAGE / "static"
STAMP = PACKAGE / "node_modules" / ".courier-lock.sha256"
COURIER = str(Path(sys.executable).with_name("courier"))
HAVE_NODE = shutil.which("node") is not None and shutil.which("npm") is not None
needs_node = pytest.mark.skipif(not HAVE_NODE, reason="node and npm are not installed (Node 20+)")


# -- the page, served ------------------------------------------------------------------
async def test_the_page_and_its_files_are_served_with_the_pages_policy(edge: EdgeFactory) -> None:
    node = await edge()
    bare = await node.http.get("/admin")
    assert bare.status_code in (307, 308) and bare.headers["location"].endswith("/admin/")
    page = await node.http.get("/admin/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == CSP
    assert page.headers["x-content-type-options"] == "nosniff"
    for path in re.findall(r'(?:src|href)="([^"]+)"', page.text):
        r = await node.http.get(f"/admin/{path}")
        assert r.status_code == 200, path
    for name, kind in (("js/app.js", "text/javascript"), ("vendor/hooks.mjs", "text/javascript")):
        r = await node.http.get(f"/admin/{name}")
        assert r.headers["content-type"].startswith(kind), name
    missing = await node.http.get("/admin/nothing.js")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    outside = await node.http.get("/admin/../pyproject.toml")
    assert outside.status_code == 404


def test_the_page_loads_nothing_from_outside() -> None:
    """Every import and every src/href of the page is a file of static/."""
    for path in [STATIC / "index.html", *sorted((STATIC / "js").glob("*.js"))]:
        source = path.read_text()
        assert not re.search(r"""(?:src|href|from|import)\s*=?\s*["']https?://""", source), path
        for target in re.findall(r"""(?:^|\s)(?:import|from)\s*["']([^"']+)["']""", source, re.M):
            assert target.startswith("."), (path, target)
            assert (path.parent / target).resolve().is_file(), (path, target)
    for path in (STATIC / "vendor").glob("*.mjs"):
        for target in re.findall(r"""from\s*["']([^"']+)["']""", path.read_text()):
            assert target.startswith("./"), (path, target)


def test_package_data_names_every_page_file() -> None:
    """The page's files are package data (pyproject.toml): each file of static/ matches
    one of the console's patterns, which are globs relative to console/ as setuptools
    reads them, and the entry points that plug the console in are declared."""
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = meta["tool"]["setuptools"]["package-data"]["console"]
    files = [p.relative_to(PACKAGE).as_posix() for p in STATIC.rglob("*") if p.is_file()]
    assert len(files) > 10
    unmatched = [
        f
        for f in files
        if not any(
            fnmatch.fnmatchcase(f, pat) and f.count("/") == pat.count("/") for pat in patterns
        )
    ]
    assert unmatched == []
    assert "console" in meta["tool"]["setuptools"]["packages"]["find"]["include"]
    points = meta["project"]["entry-points"]
    assert points["courier.web"] == {"console": "console.web:install"}
    assert points["courier.commands"]["admin"] == "console.cli:admin_app"


# -- sign-in -----------------------------------------------------------------------------
async def test_a_one_time_link_signs_in_once(
    edge: EdgeFactory, r: aioredis.Redis, keyspace: Keyspace, caplog: pytest.LogCaptureFixture
) -> None:
    node = await edge()
    caplog.set_level("INFO", logger="courier.audit")
    code = await signin.create(r, keyspace, node.token("pat", role="admin"))
    assert 0 < await r.ttl(keyspace.sign_in(code)) <= SIGN_IN_TTL_S
    first = await node.http.post("/admin/session/link", json={"code": code})
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["user_id"] == "pat" and body["role"] == "admin" and body["expires_at"]
    assert (
        await node.http.get("/v1/stats", headers={"Authorization": f"Bearer {body['token']}"})
    ).status_code == 200
    assert not await r.exists(keyspace.sign_in(code)), "used up"
    again = await node.http.post("/admin/session/link", json={"code": code})
    assert again.status_code == 404 and again.json()["error"]["code"] == "sign_in_link_invalid"
    assert "admin pat: sign in console (using=one-time link)" in caplog.messages
    user_code = await signin.create(r, keyspace, node.token("pat"))
    refused = await node.http.post("/admin/session/link", json={"code": user_code})
    assert refused.status_code == 403
    for bad in ({}, {"code": ""}, {"code": "x" * 101}, {"code": "a", "more": 1}):
        r422 = await node.http.post("/admin/session/link", json=bad)
        assert r422.status_code == 422 and set(r422.json()["error"]) == {"code", "detail"}


async def test_a_link_expires(edge: EdgeFactory, r: aioredis.Redis, keyspace: Keyspace) -> None:
    node = await edge()
    code = await signin.create(r, keyspace, node.token("pat", role="admin"), ttl_s=1)
    await r.pexpire(keyspace.sign_in(code), 1)
    await asyncio.sleep(0.05)
    gone = await node.http.post("/admin/session/link", json={"code": code})
    assert gone.status_code == 404


async def test_signing_in_with_a_token_needs_the_admin_role(
    edge: EdgeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    node = await edge()
    caplog.set_level("INFO", logger="courier.audit")
    assert (await node.http.post("/admin/session")).status_code == 401
    user = await node.http.post("/admin/session", headers=bearer(node, "user", "quinn"))
    assert user.status_code == 403
    assert "role 'user' may not do this; needs admin" in user.json()["error"]["detail"]
    ok = await node.http.post("/admin/session", headers=bearer(node, "admin", "quinn"))
    assert ok.status_code == 200 and ok.json()["user_id"] == "quinn"
    assert caplog.messages[-1] == "admin quinn: sign in console (using=token)"


def test_courier_admin_prints_a_link_that_lasts_five_minutes(
    redis_url: str, keyspace: Keyspace
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COURIER_")}
    env |= {
        "COURIER_REDIS_URL": redis_url,
        "COURIER_KEY_PREFIX": keyspace.prefix,
        "COURIER_JWT_SECRET": SECRET,
        "COURIER_PORT": "8123",
    }
    out = subprocess.run(
        [COURIER, "admin", "--user", "ravi", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    body = orjson.loads(out.stdout)
    assert body["user_id"] == "ravi" and body["valid_seconds"] == SIGN_IN_TTL_S
    m = re.fullmatch(r"http://127\.0\.0\.1:8123/admin/#code=([\w-]{32})", body["url"])
    assert m, body["url"]
    with redis.Redis.from_url(redis_url) as client:
        key = keyspace.sign_in(m.group(1))
        assert 0 < client.ttl(key) <= SIGN_IN_TTL_S
        client.delete(key)
    words = subprocess.run([COURIER, "admin"], env=env, capture_output=True, text=True, timeout=60)
    assert words.returncode == 0 and "Open within 5 minutes (works once)" in words.stdout
    with redis.Redis.from_url(redis_url) as client:  # its link: the suite leaves no key
        for leftover in client.scan_iter(match=keyspace.pattern()):
            client.delete(leftover)


# -- the front end -----------------------------------------------------------------------
@dataclass
class Run:
    code: int
    output: str

    def count(self, what: str) -> int:
        m = re.search(rf"^# {what} (\d+)$", self.output, re.M)
        return int(m.group(1)) if m else -1

    def tail(self, lines: int = 80) -> str:
        return "\n".join(self.output.splitlines()[-lines:])


def _run(*args: str, timeout: float) -> Run:
    env = {k: v for k, v in os.environ.items() if k not in ("NODE_OPTIONS", "FORCE_COLOR")}
    env["COURIER_VENV"] = str(ROOT / ".venv")
    proc = subprocess.run(
        list(args),
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
    if not HAVE_NODE:
        pytest.skip("node and npm are not installed (Node 20+)")
    lock = hashlib.sha256((PACKAGE / "package-lock.json").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text().strip() == lock:
        return
    run = _run("npm", "ci", "--no-audit", "--no-fund", timeout=600)
    assert run.code == 0, f"npm ci failed:\n{run.tail()}"
    STAMP.write_text(lock + "\n")


@needs_node
def test_the_vendored_libraries_are_what_the_lock_gives(installed: None) -> None:
    run = _run("bash", "vendor.sh", "--check", timeout=120)
    assert run.code == 0, run.tail()


@needs_node
def test_browser_suite(installed: None) -> None:
    run = _run("npm", "run", "test:browser", timeout=900)
    assert run.code == 0, f"npm run test:browser failed:\n{run.tail()}"
    assert run.count("fail") == 0 and run.count("pass") >= 8, run.tail()
