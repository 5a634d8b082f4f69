"""Lua scripts: each file in ``lua/`` with the shared prelude prepended.

Every script receives the partition prefix as ``KEYS[1]`` and touches only keys of
that partition (one hash tag, one Cluster slot). redis-py's ``Script`` objects run
them with EVALSHA and reload them by themselves after a Redis restart (NOSCRIPT).
The prelude is generated from the Python tables (key names, hash fields, the member
separator, the legal transitions) and cut down to what each script uses; the typed
call objects of :mod:`delivery.calls` name each script's arguments and answer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any, TypeVar

from redis.exceptions import NoScriptError

from .fields import lua_field_constants
from .keys import EVENTS_MAX_LEN, GROUP, lua_key_functions
from .members import lua_member_constants
from .status import TRANSITIONS

if TYPE_CHECKING:
    from .calls import ScriptCall

A = TypeVar("A")

NAMES = (
    "enqueue",
    "enqueue_many",
    "dispatch",
    "dispatch_many",
    "ack",
    "ack_many",
    "reclaim",
    "retry",
    "promote",
    "expire",
    "unpark",
    "trim",
    "replay",
    "purge",
    "connect",
    "touch",
    "disconnect",
    "reply",
    "task",
    "cancel",
    "escalate",
    "wh_fanout",
    "wh_claim",
    "wh_done",
    "wh_fail",
    "wh_replay",
    "wh_drop",
    "leave",
)

# Scripts that accept a message as part of their work include the enqueue function.
INCLUDES = {
    "enqueue": ("_enqueue",),
    "enqueue_many": ("_enqueue",),
    "task": ("_enqueue",),
    "dispatch": ("_dispatch",),
    "dispatch_many": ("_dispatch",),
    "ack": ("_ack",),
    "ack_many": ("_ack",),
}


def _transition_table() -> str:
    """The legal transitions as one Lua string of ``old>new`` words (``allowed()`` in
    ``_lib.lua`` looks a pair up in it): a string constant costs nothing per call,
    where building the same table of tables cost about 8 us on every script call."""
    pairs = " ".join(
        f"{old.value}>{n.value}" for old, news in TRANSITIONS.items() for n in sorted(news)
    )
    return f"local ALLOWED = ' {pairs} '"


@cache
def prelude(events_max_len: int = EVENTS_MAX_LEN) -> str:
    """The whole prelude: ``P`` (``KEYS[1]``), the generated key functions, field
    constants, member separator, transition table and the events stream's cap
    (``EVENTS_MAX``: the setting ``COURIER_EVENTS_MAX_LEN``, 0 with events off), then
    ``_lib.lua`` and ``_streams.lua``."""
    return "\n".join(
        [
            "local P = KEYS[1]",
            f"local GROUP = {GROUP!r}",
            lua_key_functions(),
            lua_field_constants(),
            lua_member_constants(),
            _transition_table(),
            f"local EVENTS_MAX = {int(events_max_len)}",
            resources.files("delivery.lua").joinpath("_lib.lua").read_text(),
            resources.files("delivery.lua").joinpath("_streams.lua").read_text(),
        ]
    )


@cache
def source(name: str, events_max_len: int = EVENTS_MAX_LEN) -> str:
    """The text of one script as Redis receives it: the prelude cut down to what the
    script uses, then its body. The events setting is part of the text (a constant
    costs a script nothing per call, an argument would cost every call): each value
    has scripts of its own."""
    lua = resources.files("delivery.lua")
    body = "\n".join(
        lua.joinpath(f"{part}.lua").read_text() for part in (*INCLUDES.get(name, ()), name)
    )
    return assemble(body, events_max_len)


def assemble(body: str, events_max_len: int = EVENTS_MAX_LEN) -> str:
    """A script body with the part of the prelude it uses (see :func:`source`)."""
    units = _units(prelude(events_max_len))
    if _DEFERRED & _needed(units, body):
        body = _with_flush(body)
    return "\n".join([*_used(units, body), body])


# Prelude tables that gather writes made once when the script ends (see _lib.lua).
_DEFERRED = {"USERS", "TOTALS", "ACKS"}


def _with_flush(body: str) -> str:
    """The body run as a function, then the gathered writes, then its answer: every
    return of the body passes through ``flush()``. Redis keeps what a failing script
    wrote before its error, so the gathered writes are made even then (a message marked
    `sent` keeps its ack deadline in `inflight`), and the error is raised after them."""
    return "\n".join(
        [
            "local function main()",
            body,
            "end",
            "local ok, out = pcall(main)",
            "flush()",
            "if not ok then error(out, 0) end",
            "return out",
        ]
    )


_DEFINES = re.compile(r"^local (?:function )?([A-Za-z_]\w*)")


def _units(text: str) -> list[tuple[str | None, str]]:
    """Top-level definitions of the prelude as (name, text); a comment goes with the
    definition below it."""
    units: list[tuple[str | None, str]] = []
    lines = text.split("\n")
    comment: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        m = _DEFINES.match(line)
        if not m:
            comment.append(line)
            i += 1
            continue
        j = i
        if line.startswith("local function") and not line.rstrip().endswith(" end"):
            while lines[j] != "end":
                j += 1
        elif line.rstrip().endswith("{"):
            while not lines[j].startswith("}"):
                j += 1
        units.append((m.group(1), "\n".join([*comment, *lines[i : j + 1]])))
        comment = []
        i = j + 1
    return units


def _needed(units: list[tuple[str | None, str]], body: str) -> set[str]:
    """Names of the units the body needs, directly or through other units."""
    names = {n for n, _ in units if n}
    text_of = dict(units)

    def refs(text: str) -> set[str]:
        code = re.sub(r"--.*", "", text)  # a word in a comment is no reference
        words = set(re.findall(r"[A-Za-z_]\w*", code))
        return names & words

    need = {"P", "NOW"} | refs(body)
    todo = list(need)
    while todo:
        for dep in refs(text_of[todo.pop()]) - need:
            need.add(dep)
            todo.append(dep)
    return need


def _used(units: list[tuple[str | None, str]], body: str) -> list[str]:
    """The units the body needs, in their order.

    Every definition runs on every call of a script (Lua closures and tables are
    built anew each time), so leaving out the unused ones makes each call cheaper."""
    need = _needed(units, body)
    return [text for n, text in units if n in need]


Call = tuple[Any, Sequence[Any], Sequence[Any]]
"""One script call for :meth:`Scripts.pipelined`: (script, keys, args)."""


async def _resend_missing(client: Any, calls: Sequence[Call], results: list[Any]) -> bool:
    """Load and send again, in one pipeline, the calls Redis answered NOSCRIPT (it
    restarted or was flushed), their answers written into ``results``; whether any was."""
    missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
    if not missing:
        return False
    for script in {id(calls[i][0]): calls[i][0] for i in missing}.values():
        await client.script_load(script.script)
    retry = client.pipeline(transaction=False)
    for i in missing:
        script, keys, args = calls[i]
        retry.evalsha(script.sha, len(keys), *keys, *args)
    for i, r in zip(missing, await retry.execute(raise_on_error=False), strict=True):
        results[i] = r
    return True


class Scripts:
    """The registered scripts of one redis client (sync or asyncio); ``events_max_len``
    caps each partition's events stream (0: the scripts write no events)."""

    def __init__(self, client: Any, *, events_max_len: int = EVENTS_MAX_LEN) -> None:
        self.client = client
        self.events_max_len = events_max_len
        for name in NAMES:
            setattr(self, name, client.register_script(source(name, events_max_len)))

    async def pipelined_then(
        self, calls: Sequence[Call], after: Sequence[Any], client: Any = None
    ) -> tuple[list[Any], list[Any], bool]:
        """:meth:`pipelined` with ``after``, commands (args, kwargs) sent behind the
        calls on the same connections (``WAIT``: delivery/replication.py). Returns the
        calls' results, the answers to ``after`` and whether a call was sent again
        (NOSCRIPT: on a new connection, which those answers may not cover)."""
        client = client if client is not None else self.client
        pipe = client.pipeline(transaction=False)
        for script, keys, args in calls:
            pipe.evalsha(script.sha, len(keys), *keys, *args)
        for args, kwargs in after:
            pipe.execute_command(*args, **kwargs)
        answers = list(await pipe.execute(raise_on_error=False))
        results, tail = answers[: len(calls)], answers[len(calls) :]
        retried = bool(getattr(pipe, "noscript_retried", False))
        if await _resend_missing(client, calls, results):
            retried = True
        for r in [*results, *tail]:
            if isinstance(r, Exception):
                raise r
        return results, tail, retried

    async def pipelined(
        self, calls: Sequence[Call], client: Any = None, pipe: Any = None
    ) -> list[Any]:
        """Run (script, keys, args) calls in one pipelined round trip (asyncio client).

        redis-py asks ``SCRIPT EXISTS`` before every pipeline that holds scripts: one more
        round trip per batch. Here each call is a bare EVALSHA; only the calls Redis
        answered NOSCRIPT (it restarted or was flushed) are sent again after loading
        their script, so nothing runs twice. Errors are raised as the pipeline would.
        ``client`` (default: the one the scripts were registered with) runs them;
        ``pipe``, a pipeline of it already holding other commands, goes along in the
        same round trip (their results are checked, not returned)."""
        client = client if client is not None else self.client
        pipe = pipe if pipe is not None else client.pipeline(transaction=False)
        before = len(pipe)
        for script, keys, args in calls:
            pipe.evalsha(script.sha, len(keys), *keys, *args)
        answers = list(await pipe.execute(raise_on_error=False))
        for r in answers[:before]:
            if isinstance(r, Exception):
                raise r
        results = answers[before:]
        await _resend_missing(client, calls, results)
        for r in results:
            if isinstance(r, Exception):
                raise r
        return results

    def pipelined_sync(self, calls: Sequence[Call], client: Any = None) -> list[Any]:
        """:meth:`pipelined` for a blocking client."""
        client = client if client is not None else self.client
        pipe = client.pipeline(transaction=False)
        for script, keys, args in calls:
            pipe.evalsha(script.sha, len(keys), *keys, *args)
        results = list(pipe.execute(raise_on_error=False))
        missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
        if missing:
            for script in {id(calls[i][0]): calls[i][0] for i in missing}.values():
                client.script_load(script.script)
            retry = client.pipeline(transaction=False)
            for i in missing:
                script, keys, args = calls[i]
                retry.evalsha(script.sha, len(keys), *keys, *args)
            for i, r in zip(missing, retry.execute(raise_on_error=False), strict=True):
                results[i] = r
        for r in results:
            if isinstance(r, Exception):
                raise r
        return results

    # -- typed calls (delivery/calls.py) --------------------------------------------------
    def call(self, c: ScriptCall[Any]) -> Call:
        """The (script, keys, args) triple of a typed call, for :meth:`pipelined`
        (an enqueue of a multi-call request names its reservation as KEYS[2])."""
        reservation = getattr(c, "reservation", None)
        keys = (c.prefix,) if reservation is None else (c.prefix, reservation)
        return getattr(self, c.SCRIPT), keys, c.args()

    async def run(self, c: ScriptCall[A]) -> A:
        """Run one typed call (asyncio client) and parse its answer."""
        return c.parse(await getattr(self, c.SCRIPT)(keys=(c.prefix,), args=c.args()))

    def run_sync(self, c: ScriptCall[A]) -> A:
        """:meth:`run` for a blocking client."""
        return c.parse(getattr(self, c.SCRIPT)(keys=(c.prefix,), args=c.args()))

    async def run_many(self, cs: Sequence[ScriptCall[A]], client: Any = None) -> list[A]:
        """Typed calls in one pipelined round trip (see :meth:`pipelined`), parsed."""
        results = await self.pipelined([self.call(c) for c in cs], client)
        return [c.parse(r) for c, r in zip(cs, results, strict=True)]

    def run_many_sync(self, cs: Sequence[ScriptCall[A]], client: Any = None) -> list[A]:
        """:meth:`run_many` for a blocking client."""
        results = self.pipelined_sync([self.call(c) for c in cs], client)
        return [c.parse(r) for c, r in zip(cs, results, strict=True)]

    def __getattr__(self, name: str) -> Any:  # for mypy: attributes set above
        raise AttributeError(name)
