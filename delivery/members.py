"""The members of the presence sets, built and split in one place.

* ``conn_member(node, conn)`` -> ``node|conn``: the members of a user's ``conns`` zset
  (``connect.lua`` / ``touch.lua`` / ``disconnect.lua`` build the same text with the
  prelude's ``conn_member``, and ``dispatch`` answers these members).
* ``node_member(user, conn)`` -> ``user|conn``: the members of a node's ``node_conns``
  set (what the dead-node sweep and a node's shutdown clean up from).

Node ids and connection ids never contain the separator, nor a quote, backslash or
control character (:func:`check_id` refuses them where they are made: the scripts
write them into timeline events as JSON text without escaping); user ids may hold
``|``, so a ``node|conn`` member is split at its first ``|`` and a ``user|conn``
member at its last.
"""

from __future__ import annotations

from .text import text

SEP = "|"


_UNSAFE = frozenset({SEP, '"', "\\"} | {chr(c) for c in range(32)} | {chr(127)})


def check_id(value: str, what: str) -> str:
    """A node or connection id, refused when it is empty or holds the separator, a
    quote, a backslash or a control character."""
    if not value or not _UNSAFE.isdisjoint(value):
        raise ValueError(
            f"{what} must be a non-empty string without {SEP!r}, quotes, backslashes "
            f"or control characters: {value!r}"
        )
    return value


def conn_member(node_id: str, conn_id: str) -> str:
    """``node|conn``: one live connection in its user's ``conns`` zset."""
    check_id(node_id, "node id")
    check_id(conn_id, "connection id")
    return f"{node_id}{SEP}{conn_id}"


def parse_conn_member(member: bytes | str) -> tuple[str, str]:
    """(node id, connection id) of a ``conns`` member."""
    s = text(member)
    node, sep, conn = s.partition(SEP)
    if not sep:
        raise ValueError(f"not a node|conn member: {s!r}")
    return node, conn


def node_member(user_id: str, conn_id: str) -> str:
    """``user|conn``: one connection in its node's ``node_conns`` set."""
    if not user_id:
        raise ValueError("user id must be a non-empty string")
    check_id(conn_id, "connection id")
    return f"{user_id}{SEP}{conn_id}"


def parse_node_member(member: bytes | str) -> tuple[str, str]:
    """(user id, connection id) of a ``node_conns`` member (user ids may hold ``|``)."""
    s = text(member)
    user, sep, conn = s.rpartition(SEP)
    if not sep:
        raise ValueError(f"not a user|conn member: {s!r}")
    return user, conn


def lua_member_constants() -> str:
    """The separator for the Lua prelude (``conn_member`` in ``_lib.lua`` uses it)."""
    return f"local MEMBER_SEP = {SEP!r}"
