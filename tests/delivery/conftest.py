from __future__ import annotations

import pytest

from delivery.producer import Limits
from delivery.store import Timing
from tests.support import Harness


@pytest.fixture
def timing() -> Timing:
    return Timing(
        ack_timeout_ms=300,
        heartbeat_timeout_ms=60_000,
        retry_base_seconds=0.05,
        retry_max_seconds=0.2,
        retention_ms=3_600_000,
    )


@pytest.fixture
async def h(r, keyspace, timing) -> Harness:  # type: ignore[no-untyped-def]
    return await Harness(r, keyspace, timing, Limits()).start()
