"""Request dependencies: who is calling, and the process runtime."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .auth import AuthError, Principal, Role, Verifier
from .errors import ApiError
from .runtime import Runtime


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime  # Starlette's state holds Any
    return rt


# The OpenAPI security scheme of every authenticated route (the Authorize button of
# /docs); a missing or malformed header is answered with Courier's own 401 below.
bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    bearerFormat="JWT",
    description="A JWT: `courier token backend --role service` (or `--role admin`).",
)


def principal(
    request: Request, creds: HTTPAuthorizationCredentials | None = Depends(bearer)
) -> Principal:
    verifier: Verifier = request.app.state.verifier
    token = creds.credentials.strip() if creds is not None else ""
    if not token:
        raise ApiError(401, "missing token: send 'Authorization: Bearer <jwt>'")
    try:
        return verifier.verify(token)
    except AuthError as e:
        raise ApiError(401, e.detail) from None


def require(*roles: Role) -> Callable[[Principal], Principal]:
    """Only these roles (``service`` below names admin too: an admin may act as a
    service)."""
    allowed = set(roles)

    def dep(who: Principal = Depends(principal)) -> Principal:
        if who.role not in allowed:
            names = " or ".join(sorted(r.value for r in allowed))
            raise ApiError(403, f"role {who.role.value!r} may not do this; needs {names}")
        return who

    return dep


service = require(Role.SERVICE, Role.ADMIN)
admin = require(Role.ADMIN)
