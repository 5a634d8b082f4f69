"""JWT verification (pyjwt): HS256 with the shared secret by default; HS384/HS512
with the same secret, RS*/PS*/ES*/EdDSA with a public key when configured
(:class:`delivery.settings.JwtAlgorithm`: ``none`` is not one). Claims: ``sub`` (user
id: 1 to 200 characters, no control characters, braces or lone surrogates), ``exp``
(required), ``role`` (user, service or admin)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import jwt

from delivery import clock
from delivery.exceptions import SettingsError
from delivery.message import check_name
from delivery.settings import JwtAlgorithm, Settings


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
        self.algorithm = JwtAlgorithm(settings.jwt_algorithm)
        # A symmetric algorithm never takes the public key as its secret: anyone who
        # has the key could sign tokens with it.
        symmetric = self.algorithm.symmetric
        key = settings.jwt_secret if symmetric else settings.jwt_public_key
        if not key:
            needs = "COURIER_JWT_SECRET" if symmetric else "COURIER_JWT_PUBLIC_KEY"
            raise SettingsError(f"{self.algorithm.value} tokens need {needs}")
        self.key: str = key

    def verify(self, token: str | None) -> Principal:
        if not token:
            raise AuthError("missing token")
        try:
            claims = jwt.decode(
                token,
                self.key,
                algorithms=[self.algorithm.value],  # never "none", never another family
                options={"require": ["exp", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("token expired") from None
        except jwt.InvalidTokenError as e:
            raise AuthError(f"invalid token: {e}") from None
        sub = claims.get("sub")
        if not isinstance(sub, str):
            raise AuthError("sub must be a string")
        try:
            check_name(sub, "sub")
        except ValueError as e:
            raise AuthError(str(e)) from None
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
