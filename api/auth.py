"""JWT verification (pyjwt): HS256 with the shared secret by default, RS256/ES256
with a public key when configured. Claims: ``sub`` (user id), ``exp`` (required),
``role`` (user, service or admin)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import jwt

from delivery import clock
from delivery.settings import Settings


class Role(StrEnum):
    USER = "user"
    SERVICE = "service"
    ADMIN = "admin"


@dataclass(frozen=True)
class Principal:
    user_id: str
    role: Role
    exp: float = 0.0  # the token's expiry, unix seconds (a WebSocket closes then: 4401)


class AuthError(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class Verifier:
    def __init__(self, settings: Settings) -> None:
        self.algorithm = settings.jwt_algorithm
        key = settings.jwt_public_key if self.algorithm != "HS256" else settings.jwt_secret
        if not key:
            needs = "COURIER_JWT_SECRET" if self.algorithm == "HS256" else "COURIER_JWT_PUBLIC_KEY"
            raise ValueError(f"{self.algorithm} tokens need {needs}")
        self.key: str = key

    def verify(self, token: str | None) -> Principal:
        if not token:
            raise AuthError("missing token")
        try:
            claims = jwt.decode(
                token,
                self.key,
                algorithms=[self.algorithm],  # never "none", never another family
                options={"require": ["exp", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("token expired") from None
        except jwt.InvalidTokenError as e:
            raise AuthError(f"invalid token: {e}") from None
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise AuthError("sub must be a non-empty string")
        try:
            role = Role(claims.get("role", "user"))
        except ValueError:
            raise AuthError(f"unknown role {claims.get('role')!r}") from None
        return Principal(sub, role, float(claims["exp"]))


def issue(settings: Settings, user_id: str, *, role: str = "user", ttl: int = 3600) -> str:
    """A token signed with the configured secret (HS256), for trying things out."""
    now = int(clock.wall())
    claims = {"sub": user_id, "role": Role(role).value, "iat": now, "exp": now + ttl}
    if not settings.jwt_secret:
        raise ValueError("set COURIER_JWT_SECRET (or start `courier serve` once to make one)")
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")
