"""Lua scripts: each file in ``lua/`` with the shared prelude prepended.

Every script receives the partition prefix as ``KEYS[1]`` and touches only keys of
that partition (one hash tag, one Cluster slot). redis-py's ``Script`` objects run
them with EVALSHA and reload them by themselves after a Redis restart (NOSCRIPT).
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

from .keys import lua_key_functions
from .status import TRANSITIONS

NAMES = (
    "enqueue",
    "dispatch",
    "ack",
    "due",
    "retry",
    "promote",
    "expire",
    "unpark",
    "bury",
    "replay",
    "purge",
    "connect",
    "touch",
    "disconnect",
    "reply",
    "task",
)

# Scripts that accept a message as part of their work include the enqueue function.
INCLUDES = {"enqueue": ("_enqueue",), "task": ("_enqueue",)}


def _transition_table() -> str:
    rows = []
    for old, news in TRANSITIONS.items():
        inner = ", ".join(f"{n.value} = true" for n in sorted(news))
        rows.append(f"  {old.value} = {{{inner}}},")
    return "local ALLOWED = {\n" + "\n".join(rows) + "\n}"


@cache
def source(name: str) -> str:
    """The full text of one script as Redis receives it."""
    lua = resources.files("delivery.lua")
    parts = ["local P = KEYS[1]", lua_key_functions(), _transition_table()]
    for part in ("_lib", *INCLUDES.get(name, ()), name):
        parts.append(lua.joinpath(f"{part}.lua").read_text())
    return "\n".join(parts)


class Scripts:
    """The registered scripts of one redis client (sync or asyncio)."""

    def __init__(self, client: Any) -> None:
        for name in NAMES:
            setattr(self, name, client.register_script(source(name)))

    def __getattr__(self, name: str) -> Any:  # for mypy: attributes set above
        raise AttributeError(name)
