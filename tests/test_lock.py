"""The lock files: every install (scripts/bootstrap, the Dockerfile, CI through
scripts/test) takes pinned, hashed versions, the venv holds exactly those, and
pyproject's bounds match what the code needs (issue 11: 10)."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def pins(name: str) -> dict[str, tuple[str, Marker | None]]:
    """package -> (version, marker) of a lock file; every entry pinned and hashed."""
    text = (ROOT / "requirements" / name).read_text()
    out: dict[str, tuple[str, Marker | None]] = {}
    for entry in re.split(r"\n(?=[a-z0-9])", text.split("\n", 1)[1].strip(), flags=re.I):
        head, *rest = entry.split(" \\\n")
        if head.startswith("#"):
            continue
        req = Requirement(head.strip())
        (spec,) = req.specifier
        assert spec.operator == "==", head
        assert rest and all(r.strip().startswith("--hash=sha256:") for r in rest), head
        out[canonicalize_name(req.name)] = (spec.version, req.marker)
    return out


def declared(*extras: str) -> set[str]:
    reqs = list(PYPROJECT["project"]["dependencies"])
    for extra in extras:
        reqs += PYPROJECT["project"]["optional-dependencies"][extra]
    return {canonicalize_name(Requirement(r).name) for r in reqs}


def test_the_lock_files_pin_everything_declared_with_hashes() -> None:
    base, dev = pins("base.txt"), pins("dev.txt")
    assert declared() <= base.keys()
    assert declared("dev", "bench", "embedded") <= dev.keys()
    for name in base.keys() & dev.keys():
        assert base[name][0] == dev[name][0], name  # one version of each package


def test_the_venv_holds_exactly_the_locked_versions() -> None:
    wrong = {}
    for name, (pinned, marker) in pins("dev.txt").items():
        if marker is not None and not marker.evaluate():
            continue
        try:
            have = version(name)
        except PackageNotFoundError:
            have = "missing"
        if have != pinned:
            wrong[name] = (have, pinned)
    assert not wrong, f"installed != locked (run ./scripts/bootstrap): {wrong}"


def bound(name: str) -> SpecifierSet:
    for r in PYPROJECT["project"]["dependencies"]:
        req = Requirement(r)
        if canonicalize_name(req.name) == name:
            return req.specifier
    raise AssertionError(name)


def test_bounds_match_the_code() -> None:
    ws = bound("websockets")  # scripts/client.py and the tests use websockets.asyncio
    assert "12.0" not in ws and "13.0" in ws
    uv = bound("uvicorn")  # api/wire.py extends a private module of one minor
    installed = version("uvicorn")
    major, minor = (int(x) for x in installed.split(".")[:2])
    assert installed in uv and f"{major}.{minor + 1}.0" not in uv
    assert any(s.operator == "<" for s in uv)


def test_installs_come_from_the_lock() -> None:
    bootstrap = (ROOT / "scripts" / "bootstrap").read_text()
    assert "requirements/dev.txt" in bootstrap and "--require-hashes" in bootstrap
    assert "--no-deps -e" in bootstrap
    docker = (ROOT / "Dockerfile").read_text()
    assert "pip install --require-hashes -r requirements/base.txt" in docker
    assert "pip install --no-deps ." in docker
    assert "scripts/bootstrap" in (ROOT / "scripts" / "test").read_text()
    assert "./scripts/test" in (ROOT / ".ci" / "run").read_text()
