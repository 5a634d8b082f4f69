"""The README's commands and snippets, run as written against a real `courier serve`
started by `./scripts/serve`: the shell blocks in bash (with the venv activated, as the
README says), the Python block as a script, while a user answers on the WebSocket.

Two substitutions only: the port (8000 may be taken on a shared machine: the README's
URLs get the test's port, `./scripts/serve` gets COURIER_PORT) and `<id>`, the
placeholder for the id that `courier send` printed. The data folder is the test's
(COURIER_DATA_DIR) rather than the user's own."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect

from api.redis_server import free_port
from tests.serve_support import ROOT, base_env, courier, wait_dead

pytestmark = pytest.mark.slow

README = (ROOT / "README.md").read_text()


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def activated(env: dict[str, str]) -> dict[str, str]:
    venv = str(Path(sys.executable).parent.parent)
    return {**env, "VIRTUAL_ENV": venv, "PATH": f"{venv}/bin:{env['PATH']}"}


def block(marker: str) -> str:
    """The one shell block of the README that contains `marker`."""
    (found,) = [b for b in blocks("bash") if marker in b]
    return found


def test_the_readme_has_what_this_test_runs() -> None:
    start = block("./scripts/serve")
    assert start.splitlines()[0].startswith("./scripts/serve")
    assert start.splitlines()[1].startswith("./scripts/test")  # this suite itself
    assert block("python scripts/client.py") and block("courier status <id>")
    assert block(".venv/bin/courier send alice")  # the inbox page's
    others = {
        block(m) for m in ("./scripts/serve", "scripts/client.py", "<id>", ".venv/bin/courier send")
    }
    assert others == set(blocks("bash")), "a shell block of the README that no test runs"
    assert len(blocks("python")) == 1


def test_the_command_table_names_every_command() -> None:
    """Each command `courier --help` lists (the plugged-in ones too) has a row."""
    import typer.main

    from api.cli import app  # its import adds the plugged-in groups (admin, bench)

    group = typer.main.get_group(app)
    (table,) = re.findall(r"## Commands\n(.*?)\n## ", README, flags=re.S)
    rows = set(re.findall(r"`courier (\w[\w-]*)", table))
    assert set(group.commands) - rows == set(), "commands the README's table leaves out"
    assert rows - set(group.commands) <= {"COMMAND"}  # `courier COMMAND --help`


async def test_the_readme_as_written(tmp_path: Path) -> None:
    port = free_port()
    env = base_env(tmp_path / "data", COURIER_PORT=str(port))

    def ported(b: str) -> str:
        return b.replace("127.0.0.1:8000", f"127.0.0.1:{port}")

    start, inbox, try_it, send = (
        ported(block(m)) for m in ("./scripts/serve", ".venv/bin/courier send", "client.py", "<id>")
    )
    serve = subprocess.Popen(  # noqa: ASYNC220 - a server for the whole test
        ["bash", "-c", start.splitlines()[0]],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    client = None
    try:
        assert serve.stdout is not None
        seen: list[str] = []
        deadline = time.monotonic() + 120  # bootstrap may have work to do
        while not any(line.startswith("Inbox:") for line in seen):  # after the banner
            line = await asyncio.to_thread(serve.stdout.readline)
            assert line, "".join(seen)
            assert time.monotonic() < deadline
            seen.append(line)
        assert f"Courier on http://127.0.0.1:{port}" in "".join(seen)
        # the banner's commands run as printed, in this terminal (no venv activated)
        (hint,) = [x for x in seen if x.startswith("Try:")]
        shown = hint.removeprefix("Try:").split("#")[0].strip()
        assert shown == ".venv/bin/courier token alice", hint
        made = await asyncio.to_thread(
            subprocess.run, ["bash", "-c", shown], cwd=ROOT, env=env, capture_output=True
        )
        assert made.returncode == 0 and made.stdout.count(b".") == 2, made.stderr
        redis_pid = int((tmp_path / "data" / "redis" / "redis.pid").read_text())

        client = subprocess.Popen(  # noqa: ASYNC220 - the README's second terminal
            ["bash", "-c", try_it],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert client.stderr is not None
        hello = ""
        while "connected as alice" not in hello:  # the client logs its connection
            hello = await asyncio.wait_for(asyncio.to_thread(client.stderr.readline), 60)
            assert hello, "the README's client exited"
        first, status_line = send.rsplit("\n", 2)[0], send.strip().splitlines()[-1]
        sent = await asyncio.to_thread(
            subprocess.run,
            ["bash", "-c", first],
            cwd=ROOT,
            env=activated(env),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert sent.returncode == 0, sent.stderr
        mid = sent.stdout.split()[0]
        api_id = orjson.loads(sent.stdout.splitlines()[-1])["id"]
        assert client.stdout is not None
        got: list[dict] = []  # type: ignore[type-arg]
        while len(got) < 2:  # the block's `courier token alice` prints the token first
            line = await asyncio.wait_for(asyncio.to_thread(client.stdout.readline), 30)
            assert line, "the README's client exited"
            if line.startswith("{"):
                got.append(orjson.loads(line))
        assert {f["payload"]["text"] for f in got} == {
            "your export is ready",
            "moderation finished",
        }

        status_cmd = status_line.replace("<id>", mid)
        for _ in range(50):  # "courier status shows it delivered"
            out = await asyncio.to_thread(
                subprocess.run,
                ["bash", "-c", status_cmd],
                cwd=ROOT,
                env=activated(env),
                capture_output=True,
                text=True,
                timeout=60,
            )
            if "delivered" in out.stdout:
                break
            await asyncio.sleep(0.1)
        assert "delivered" in out.stdout and "acked" in out.stdout, out.stdout + out.stderr
        assert api_id != mid

        await inbox_page(seen, inbox, env, port)
        os.killpg(client.pid, signal.SIGINT)  # "Stop the client, send again: parked"
        assert await asyncio.to_thread(client.wait, 15) == 0
        again = await asyncio.to_thread(
            courier, "send", "alice", '{"text": "later"}', env=env, cwd=ROOT
        )
        later = again.stdout.split()[0]
        for _ in range(50):
            st = await asyncio.to_thread(courier, "status", later, "--json", env=env, cwd=ROOT)
            if orjson.loads(st.stdout)["status"] == "parked":
                break
            await asyncio.sleep(0.1)
        assert orjson.loads(st.stdout)["status"] == "parked"

        await python_snippet(tmp_path, env, port)
    finally:
        if client is not None:  # its whole group: the block's children too
            with contextlib.suppress(ProcessLookupError):
                os.killpg(client.pid, signal.SIGKILL)
        os.killpg(serve.pid, signal.SIGINT)  # Ctrl-C in the first terminal
        assert await asyncio.to_thread(serve.wait, 30) == 0
    wait_dead(redis_pid)  # the embedded Redis stopped after Courier


async def inbox_page(serve_output: list[str], inbox: str, env: dict[str, str], port: int) -> None:
    """ "./scripts/serve prints its URL": the page loads from Courier with a valid token
    of alice's, and the block beside it sends her a message."""
    (line,) = [x for x in serve_output if x.startswith("Inbox:")]
    url = line.split()[1]
    assert url.startswith(f"http://127.0.0.1:{port}/examples/inbox.html?token="), line
    async with httpx.AsyncClient(timeout=10) as http:
        page = await http.get(url)
        assert page.status_code == 200 and "<html" in page.text.lower()
        token = url.split("token=", 1)[1]
        mine = await http.get(
            f"http://127.0.0.1:{port}/v1/tasks", headers={"Authorization": f"Bearer {token}"}
        )
        assert mine.status_code == 200, mine.text  # alice's token, valid
    sent = await asyncio.to_thread(
        subprocess.run,
        ["bash", "-c", inbox],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert sent.returncode == 0 and sent.stdout.strip().endswith(" queued"), sent.stderr


async def python_snippet(tmp_path: Path, env: dict[str, str], port: int) -> None:
    """The Python block as a script, while alice (online) acks and answers "yes"."""
    script = tmp_path / "snippet.py"
    script.write_text(blocks("python")[0])
    token = courier("token", "alice", env=env, cwd=ROOT).stdout.strip()
    async with connect(f"ws://127.0.0.1:{port}/v1/ws?token={token}") as ws:
        # alice is back: the messages parked while she was away arrive first, then
        # the snippet runs (as in the README, with alice online)
        parked = {"later"}
        while parked:
            frame = orjson.loads(await asyncio.wait_for(ws.recv(), 15))
            if frame["type"] == "message":
                await ws.send(orjson.dumps({"type": "ack", "id": frame["id"]}).decode())
                parked.discard(frame["payload"].get("text"))
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(script),
            cwd=tmp_path,
            env=activated(env),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        texts = []
        deadline = time.monotonic() + 30
        while proc.returncode is None and time.monotonic() < deadline:
            try:
                frame = orjson.loads(await asyncio.wait_for(ws.recv(), 0.5))
            except TimeoutError:
                continue
            if frame["type"] == "message":
                await ws.send(orjson.dumps({"type": "ack", "id": frame["id"]}).decode())
                texts.append(frame["payload"])
                if frame.get("reply_requested"):
                    reply = {"type": "reply", "id": frame["id"], "data": "yes"}
                    await ws.send(orjson.dumps(reply).decode())
                    break
        try:
            out, err = await asyncio.wait_for(proc.communicate(), 30)
        except TimeoutError:
            proc.kill()
            out, err = await proc.communicate()
            user = courier("user", "alice", "--json", env=env, cwd=ROOT).stdout
            raise AssertionError(
                f"the snippet did not finish: {texts} {out!r} {err!r}; alice's messages: {user}"
            ) from None
    assert proc.returncode == 0, err.decode()
    assert out.decode() == "alice answered yes\n", (out, err)
    assert {"text": "hi"} in texts and {"question": "Proceed?"} in texts
