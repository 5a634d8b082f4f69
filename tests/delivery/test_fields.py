"""The field tables of ``delivery/fields.py`` and what the Lua prelude makes of them:
both sides agree, each script's prelude keeps only what it names, the scripts name no
field by a bare string, and docs/architecture.md shows the same tables."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import pytest

from delivery.fields import TABLES, MessageField, fields_markdown, lua_field_constants
from delivery.members import SEP
from delivery.scripts import NAMES, assemble, prelude, source
from tests.support import Harness

ROOT = Path(__file__).resolve().parents[2]


def _lua_names() -> dict[str, str]:
    """Lua constant name -> field, as the Python tables say."""
    return {f"{prefix}{f.name}": f.value for table, (_, prefix) in TABLES.items() for f in table}


def test_every_table_names_each_field_once() -> None:
    for table in TABLES:
        values = [f.value for f in table]
        assert len(values) == len(set(values)), table
        assert all(f.meaning for f in table), table
    assert len(_lua_names()) == sum(len(list(t)) for t in TABLES)


async def test_lua_constants_are_the_python_fields(h: Harness) -> None:
    names = sorted(_lua_names())
    body = "return {" + ", ".join([*names, "MEMBER_SEP"]) + "}"
    got = await h.r.register_script(assemble(body))(keys=[h.keyspace.part(0)])
    assert [v.decode() for v in got] == [*(_lua_names()[n] for n in names), SEP]


def test_each_script_keeps_only_the_constants_it_uses() -> None:
    every = set(re.findall(r"^local (\w+) = '", lua_field_constants(), re.M))
    assert every == set(_lua_names())
    assert every <= set(re.findall(r"^local (\w+) = '", prelude(), re.M))
    cancel = set(re.findall(r"^local (\w+) = '", source("cancel"), re.M))
    assert cancel & every == {"TASK_CANCEL_REQUESTED"}
    ack = set(re.findall(r"^local (\w+) = '", source("ack"), re.M)) & every
    assert "F_STATUS" in ack and "F_PAYLOAD" not in ack and "TASK_STATUS" not in ack


_COMMANDS = re.compile(r"'(HMGET|HGET|HSET|HDEL|XADD)'")


@pytest.mark.parametrize("path", sorted(resources.files("delivery.lua").iterdir(), key=str))
def test_scripts_name_no_message_field_by_a_bare_string(path: Path) -> None:
    if not str(path).endswith(".lua"):
        return
    fields = {f.value for f in MessageField} | {"m", "u"}  # and the stream entry's
    code = re.sub(r"--.*", "", Path(str(path)).read_text())
    for line in code.splitlines():
        if _COMMANDS.search(line):
            bare = set(re.findall(r"'([a-z]+)'", line)) & fields
            assert not bare, f"{path.name}: {line.strip()}"


def test_the_lua_scripts_name_their_arguments_in_their_first_lines() -> None:
    """Every ``ARGV[<number>]`` of a script is read into a local before its first other
    statement (batch scripts then index the per-item part with named offsets)."""
    lua = resources.files("delivery.lua")
    for name in NAMES:
        lines = [
            ln
            for ln in lua.joinpath(f"{name}.lua").read_text().splitlines()
            if ln.strip() and not ln.startswith("--")
        ]
        head = 0
        while (
            head < len(lines)
            and lines[head].startswith("local ")
            and "redis.call" not in lines[head]
        ):
            head += 1
        assert head, name
        for ln in lines[head:]:
            assert not re.search(r"ARGV\[\d+\]", ln), f"{name}.lua: {ln.strip()}"


def test_architecture_doc_shows_the_tables() -> None:
    doc = (ROOT / "docs" / "architecture.md").read_text()
    assert fields_markdown() in doc, "regenerate with delivery.fields.fields_markdown()"
