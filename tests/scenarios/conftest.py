"""The scenario tests run our first users' systems end to end on the same real edge
servers as the API tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from delivery.keys import Keyspace
from delivery.producer import Producer, SyncProducer
from tests.api.conftest import edge  # noqa: F401  (the real-server fixture)


@pytest.fixture
def sync_producer(redis_url: str, keyspace: Keyspace) -> Iterator[SyncProducer]:
    """What a Celery task or a thread pool uses: blocking, safe from any thread."""
    p = SyncProducer(redis.Redis.from_url(redis_url), keyspace=keyspace)
    yield p
    p.close()


@pytest.fixture
def producer(r, keyspace: Keyspace) -> Producer:  # type: ignore[no-untyped-def]
    return Producer(r, keyspace=keyspace)
