"""Request dependencies: who is calling, and the process runtime."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request

from .auth import AuthError, Principal, Role, Verifier
from .errors import ApiError
from .runtime import Runtime


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime  # Starlette's state holds Any
    return rt


def principal(request: Request) -> Principal:
    verifier: Verifier = request.app.state.verifier
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else None
    if token is None:
        raise ApiError(401, "missing token: send 'Authorization: Bearer <jwt>'")
    try:
        return verifier.verify(token)
    except AuthError as e:
        raise ApiError(401, e.detail) from None


def require(*roles: Role) -> Callable[[Request], Principal]:
    """Only these roles (``service`` below names admin too: an admin may act as a
    service)."""
    allowed = set(roles)

    def dep(request: Request) -> Principal:
        who = principal(request)
        if who.role not in allowed:
            names = " or ".join(sorted(r.value for r in allowed))
            raise ApiError(403, f"role {who.role.value!r} may not do this; needs {names}")
        return who

    return dep


service = require(Role.SERVICE, Role.ADMIN)
admin = require(Role.ADMIN)
