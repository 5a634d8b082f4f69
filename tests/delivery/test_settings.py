"""Settings that make no sense are refused at start with one line naming the setting
(delivery/settings.py): bad values, combinations that cannot work, and the JWT
algorithms (an enum: `none` is not one; HS* never takes a public key)."""

from __future__ import annotations

import pytest

from delivery.exceptions import SettingsError
from delivery.settings import JwtAlgorithm, Settings

PEM = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----"


@pytest.mark.parametrize(
    ("values", "names"),
    [
        ({"partitions": 0}, "COURIER_PARTITIONS"),
        ({"jwt_algorithm": "none"}, "COURIER_JWT_ALGORITHM"),
        ({"jwt_algorithm": "HS384", "jwt_public_key": PEM}, "COURIER_JWT_PUBLIC_KEY"),
        ({"jwt_algorithm": "HS512", "jwt_secret": PEM}, "COURIER_JWT_SECRET"),
        ({"jwt_algorithm": "RS256"}, "COURIER_JWT_PUBLIC_KEY"),
        (
            {"heartbeat_interval_seconds": 30, "heartbeat_timeout_seconds": 10},
            "COURIER_HEARTBEAT_TIMEOUT_SECONDS",
        ),
        ({"retry_base_seconds": 10, "retry_max_seconds": 1}, "COURIER_RETRY_MAX_SECONDS"),
        ({"default_ttl_seconds": 100, "max_ttl_seconds": 10}, "COURIER_MAX_TTL_SECONDS"),
        ({"max_payload_bytes": 4 << 20}, "COURIER_SEND_QUEUE_BYTES"),
        ({"drain_window": 500, "max_unacked": 100}, "COURIER_MAX_UNACKED"),
        ({"max_header_bytes": 10}, "COURIER_MAX_HEADER_BYTES"),
        ({"header_timeout_seconds": 0}, "COURIER_HEADER_TIMEOUT_SECONDS"),
        ({"rate_limit_burst": 1}, "COURIER_RATE_LIMIT_BURST"),
    ],
)
def test_nonsense_is_refused_in_one_line(values: dict[str, object], names: str) -> None:
    with pytest.raises(SettingsError) as e:
        Settings(**{"jwt_secret": "s" * 32, **values})  # type: ignore[arg-type]
    text = str(e.value)
    assert "\n" not in text and names in text, text


def test_the_environment_is_checked_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COURIER_JWT_ALGORITHM", "none")
    with pytest.raises(SettingsError, match="COURIER_JWT_ALGORITHM: Input should be 'HS256'"):
        Settings()


def test_every_algorithm_pyjwt_verifies_is_accepted_with_its_key() -> None:
    for alg in JwtAlgorithm:
        key = {"jwt_secret": "s" * 32} if alg.symmetric else {"jwt_public_key": PEM}
        assert Settings(jwt_algorithm=alg, **key).jwt_algorithm is alg  # type: ignore[arg-type]
    assert {a.value for a in JwtAlgorithm if a.symmetric} == {"HS256", "HS384", "HS512"}
