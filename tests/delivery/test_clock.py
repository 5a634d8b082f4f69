"""The clock seam (delivery/clock.py): Redis TIME as ms, and local clocks that a test
freezes and steps instead of sleeping (the ``frozen_clock`` fixture)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis

from delivery import clock
from delivery.enqueue import Limits, build
from delivery.exceptions import ValidationError
from delivery.keys import Keyspace
from delivery.message import MessageIn
from delivery.reporter import _Progress
from tests.conftest import FrozenClock


def test_a_time_reply_is_epoch_ms() -> None:
    assert clock.time_ms((b"1767225600", b"123456")) == 1_767_225_600_123
    assert clock.time_ms((1767225600, 999)) == 1_767_225_600_000


async def test_server_ms_is_redis_time_whatever_the_local_clock_says(
    r: aioredis.Redis, frozen_clock: FrozenClock
) -> None:
    frozen_clock.wall = 1_000_000_000.0  # 2001: the local clock is far off
    before = clock.time_ms(await r.time())
    got = await clock.server_ms(r)
    after = clock.time_ms(await r.time())
    assert before <= got <= after
    assert abs(got - clock.wall_ms()) > 86_400_000


def test_wall_ms_reads_the_frozen_wall(frozen_clock: FrozenClock) -> None:
    assert clock.wall_ms() == 1_767_225_600_000
    frozen_clock.advance(1.5)
    assert clock.wall_ms() == 1_767_225_601_500
    assert clock.monotonic() == 1_001.5


def test_progress_reports_are_throttled_by_the_monotonic_clock(
    frozen_clock: FrozenClock,
) -> None:
    progress = _Progress("t1", "u1", total=None, min_interval=1.0)
    assert progress.due()
    assert not progress.due()
    frozen_clock.advance(0.9)
    assert not progress.due()
    frozen_clock.advance(0.1)
    assert progress.due()


def test_deliver_at_is_checked_against_the_local_clock(frozen_clock: FrozenClock) -> None:
    ks, limits = Keyspace("t", 1), Limits()
    now = datetime.fromtimestamp(frozen_clock.wall, UTC)

    def message(at: datetime) -> MessageIn:
        return MessageIn(user_id="u", payload={}, ttl_seconds=60, deliver_at=at)

    (call,) = build(message(now + timedelta(seconds=59)), keyspace=ks, limits=limits)
    assert call.opts.deliver_at_ms == 1_767_225_659_000
    with pytest.raises(ValidationError, match="deliver_at must come before"):
        build(message(now + timedelta(seconds=60)), keyspace=ks, limits=limits)
    frozen_clock.advance(1)  # a second later the same instant is within the ttl
    build(message(now + timedelta(seconds=60)), keyspace=ks, limits=limits)
