"""The partitions' hash tags on Redis Cluster: one per slot range, so that partitions
split evenly over evenly split masters (delivery/keys.py, ``spread_tags``)."""

from __future__ import annotations

from collections import Counter

import pytest
from redis.crc import key_slot

from delivery.keys import SLOTS, Keyspace, slot_range, spread_tags, tag_slot
from delivery.settings import Settings


def redis_cli_split(masters: int) -> list[tuple[int, int]]:
    """The slot runs ``redis-cli --cluster create`` gives ``masters`` masters (its
    rounding: lround of cursor and cursor + slots per node - 1)."""
    per = SLOTS / masters
    runs, cursor = [], 0.0
    for i in range(masters):
        first = round(cursor)
        last = SLOTS - 1 if i == masters - 1 else round(cursor + per - 1)
        runs.append((first, last))
        cursor += per
    return runs


def master_of(slot: int, runs: list[tuple[int, int]]) -> int:
    return next(i for i, (lo, hi) in enumerate(runs) if lo <= slot <= hi)


@pytest.mark.parametrize("partitions", [1, 3, 6, 8, 12, 24, 48, 96, 256, 1024])
def test_each_tag_lies_in_its_own_slot_range(partitions: int) -> None:
    tags = spread_tags(partitions)
    assert len(tags) == len(set(tags)) == partitions
    for k, tag in enumerate(tags):
        lo, hi = slot_range(k, partitions)
        assert lo <= tag_slot(tag) <= hi
        # what Redis computes for a key carrying the tag (redis-py's own CRC16)
        assert key_slot(Keyspace("courier", partitions, spread=True).part(k).encode()) == (
            tag_slot(tag)
        )
        assert tag == f"p{k}" or tag.startswith(f"p{k}.")  # readable: the partition shows


@pytest.mark.parametrize(
    ("masters", "partitions"), [(3, 3), (3, 6), (3, 12), (3, 24), (4, 8), (5, 40), (6, 48)]
)
def test_a_multiple_of_the_masters_splits_exactly_evenly(masters: int, partitions: int) -> None:
    runs = redis_cli_split(masters)
    counts = Counter(master_of(tag_slot(t), runs) for t in spread_tags(partitions))
    assert sorted(counts.values()) == [partitions // masters] * masters


def test_pk_tags_split_unevenly_which_is_why_the_cluster_gets_spread_tags() -> None:
    runs = redis_cli_split(3)
    old = Counter(master_of(tag_slot(f"p{k}"), runs) for k in range(8))
    assert sorted(old.values()) == [2, 2, 4]  # the 4/2/2 of issue 15
    new = Counter(master_of(tag_slot(t), runs) for t in spread_tags(8))
    assert sorted(new.values()) == [2, 3, 3]  # as even as 8 over 3 allows


def test_the_tags_are_a_pure_function_of_the_partition_count() -> None:
    assert spread_tags(8) == ("p0.1", "p1.11", "p2.20", "p3.1", "p4.21", "p5.53", "p6.40", "p7.10")
    assert spread_tags(24)[:8] != spread_tags(8)  # per count, not per partition alone


def test_settings_choose_the_tags_by_deployment() -> None:
    single = Settings(redis_url="redis://h:6379", partitions=8)
    cluster = Settings(redis_url="redis+cluster://h:7000", partitions=8)
    flagged = Settings(redis_url="redis://h:7000", redis_cluster=True, partitions=8)
    kept = Settings(redis_url="redis+cluster://h:7000", partitions=8, partition_tags="pk")
    forced = Settings(redis_url="redis://h:6379", partitions=8, partition_tags="spread")
    assert single.keyspace().part(3) == "courier:{p3}:"  # single servers keep their keys
    assert cluster.keyspace().part(3) == flagged.keyspace().part(3) == "courier:{p3.1}:"
    assert kept.keyspace().part(3) == "courier:{p3}:"
    assert forced.keyspace().part(1) == "courier:{p1.11}:"


def test_a_partition_outside_the_deployment_is_a_value_error_with_spread_tags() -> None:
    ks = Keyspace("courier", 8, spread=True)
    with pytest.raises(ValueError, match="no partition 8"):
        ks.msg("8-abc")
    assert Keyspace("courier", 8).msg("8-abc") == "courier:{p8}:m:8-abc"  # as before
