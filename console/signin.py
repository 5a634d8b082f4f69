"""One-time sign-in links: ``courier admin`` stores an admin token under a random code
for :data:`~delivery.keys.SIGN_IN_TTL_S` (5 minutes); the page trades the code for the
token once (``GETDEL``: a second use, or a use after the lifetime, finds nothing).

The code travels in the link's fragment (``/admin/#code=...``), which browsers never
send to a server, so it appears in no access log on the way to the page.
"""

from __future__ import annotations

import secrets

import redis.asyncio as aioredis

from delivery.keys import SIGN_IN_TTL_S, Keyspace
from delivery.text import text

CODE_BYTES = 24  # 32 URL-safe characters: never guessed


async def create(
    client: aioredis.Redis, keyspace: Keyspace, token: str, *, ttl_s: int = SIGN_IN_TTL_S
) -> str:
    """Store `token` under a new code; the code."""
    code = secrets.token_urlsafe(CODE_BYTES)
    await client.set(keyspace.sign_in(code), token, ex=ttl_s, nx=True)
    return code


async def redeem(client: aioredis.Redis, keyspace: Keyspace, code: str) -> str | None:
    """The token a code stands for, once; None when unknown, used or expired."""
    if not code or len(code) > 100:
        return None
    value = await client.getdel(keyspace.sign_in(code))
    return None if value is None else text(value)
