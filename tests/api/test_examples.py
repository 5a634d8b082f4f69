"""The checkout's example pages and JS client served by the edge (api/examples.py):
the files with their media types, nothing outside the folders, nothing when off."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from api import errors, examples
from delivery.settings import Settings
from tests.api.conftest import EdgeFactory
from tests.servers import listening, port_of, serve

ROOT = Path(__file__).resolve().parents[2]


async def raw_get(port: int, target: str) -> tuple[int, bytes]:
    """GET exactly this request target (no client normalises its dots or escapes)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A checkout of our own: the folders, a secret next to them, a symlink out."""
    (tmp_path / "pyproject.toml").write_text("[project]\n")
    (tmp_path / "secret.txt").write_text("TOP SECRET")
    ex = tmp_path / "examples"
    ex.mkdir()
    (ex / "inbox.html").write_text("<h1>inbox</h1>")
    (ex / "page.js").write_text("export const x = 1;")
    (ex / "run.py").write_text("print('not served')")
    (ex / ".hidden.js").write_text("hidden")
    (ex / "sub").mkdir()
    (ex / "sub" / "style.css").write_text("h1 {}")
    (ex / "out.txt").symlink_to(tmp_path / "secret.txt")
    src = tmp_path / "clients" / "js" / "src"
    src.mkdir(parents=True)
    (src / "index.js").write_text("export class Courier {}")
    (src / "index.d.ts").write_text("export declare class Courier {}")
    (tmp_path / "clients" / "js" / "package.json").write_text("{}")
    return tmp_path


@pytest.fixture
async def served(checkout: Path) -> AsyncIterator[int]:
    """A real server (uvicorn, a free port) of an app serving `checkout`."""
    app = FastAPI()
    errors.install(app)
    mounted = examples.install(app, Settings(), root=checkout)
    assert set(mounted) == {"/examples", "/clients/js/src", "/client"}
    sock = listening()
    port = port_of(sock)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
    task = await serve(server, sock)
    yield port
    server.should_exit = True
    await asyncio.wait_for(task, 10)


async def test_files_are_served_with_their_media_types(served: int) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{served}") as http:
        for path, media, body in [
            ("/examples/inbox.html", "text/html; charset=utf-8", "<h1>inbox</h1>"),
            ("/examples/page.js", "text/javascript; charset=utf-8", "export const x = 1;"),
            ("/examples/sub/style.css", "text/css; charset=utf-8", "h1 {}"),
            ("/clients/js/src/index.js", "text/javascript; charset=utf-8", "export class"),
            ("/client/index.js", "text/javascript; charset=utf-8", "export class Courier {}"),
            ("/client/index.d.ts", "text/plain; charset=utf-8", "export declare"),
        ]:
            r = await http.get(path)
            assert r.status_code == 200, path
            assert r.headers["content-type"] == media, path
            assert r.headers["x-content-type-options"] == "nosniff"
            assert r.text.startswith(body), path
        etag = (await http.get("/examples/inbox.html")).headers["etag"]
        r = await http.get("/examples/inbox.html", headers={"If-None-Match": etag})
        assert r.status_code == 304
        r = await http.post("/examples/inbox.html")
        assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"


@pytest.mark.parametrize(
    "target",
    [
        "/examples/../secret.txt",
        "/examples/%2e%2e/secret.txt",
        "/examples/..%2fsecret.txt",
        "/examples/sub/../../secret.txt",
        "/examples/..%5csecret.txt",
        "/client/../../../secret.txt",
        "/clients/js/src/../package.json",
        "/examples//etc/passwd",
        "/examples/%2fetc%2fpasswd",
        "/examples/out.txt",  # a symlink to a file outside the folder
        "/examples/run.py",  # not a type that is served
        "/examples/.hidden.js",  # dotfiles never
        "/examples/sub",  # a folder is no file
        "/examples/inbox.html%00.js",
        "/examples/nothing.html",
    ],
)
async def test_nothing_outside_the_folders_is_served(served: int, target: str) -> None:
    status, body = await raw_get(served, target)
    assert status == 404, (target, body)
    assert b'"code":"not_found"' in body
    assert b"TOP SECRET" not in body and b"root:" not in body


async def test_the_edge_serves_the_checkouts_examples(edge: EdgeFactory) -> None:
    node = await edge()
    r = await node.http.get("/examples/task_page.html")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert r.text == (ROOT / "examples" / "task_page.html").read_text()
    r = await node.http.get("/examples/../pyproject.toml")
    assert r.status_code == 404


async def test_off_serves_nothing(edge: EdgeFactory) -> None:
    node = await edge(serve_examples=False)
    r = await node.http.get("/examples/task_page.html")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_the_banner_names_the_inbox_when_it_is_served(
    checkout: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(examples, "checkout_root", lambda: checkout)
    line = examples.banner(Settings(host="0.0.0.0", port=8123), "TOKEN")
    assert line is not None
    assert line.endswith("http://127.0.0.1:8123/examples/inbox.html?token=TOKEN")
    assert examples.banner(Settings(serve_examples=False), "T") is None
    (checkout / "examples" / "inbox.html").unlink()
    assert examples.banner(Settings(), "T") is None
    monkeypatch.setattr(examples, "checkout_root", lambda: None)  # a wheel: no checkout
    assert examples.banner(Settings(), "T") is None


async def test_the_pages_docs_clients_md_opens_are_served_by_the_edge(edge: EdgeFactory) -> None:
    """docs/clients.md opens the example pages from Courier itself (no other server)."""
    node = await edge()
    text = (ROOT / "docs" / "clients.md").read_text()
    assert "http.server" not in text
    paths = re.findall(r"http://127\.0\.0\.1:8000(/examples/[\w.]+\.html)", text)
    assert {"/examples/inbox.html", "/examples/task_page.html"} <= set(paths)
    for path in set(paths):
        page = await node.http.get(path)
        assert page.status_code == 200 and "@courier/client" in page.text, path
        for module in re.findall(r'from "(\./[\w.]+\.js)"', page.text):
            assert (await node.http.get(f"/examples/{module[2:]}")).status_code == 200, module
