"""``courier cluster rebalance``'s plan (delivery/resharding.py): one partition at a
time from the fullest master to the emptiest, until they differ by one at most."""

from __future__ import annotations

from collections import Counter

from delivery.resharding import Place, plan_rebalance


def places(layout: dict[str, list[int]]) -> list[Place]:
    return [Place(p, f"p{p}", 0, master, 0) for master, ps in layout.items() for p in ps]


def test_a_new_empty_master_gets_its_share_one_partition_at_a_time() -> None:
    layout = {"a:1": [0, 1, 2, 3], "b:2": [4, 5, 6, 7], "c:3": [8, 9, 10, 11]}
    moves = plan_rebalance(places(layout), ["a:1", "b:2", "c:3", "d:4"])
    assert len(moves) == 3 and all(dst == "d:4" for _, _, dst in moves)
    after = Counter({m: len(ps) for m, ps in layout.items()})
    for _, src, dst in moves:
        after[src] -= 1
        after[dst] += 1
    assert sorted(after.values()) == [3, 3, 3, 3]


def test_a_balanced_cluster_moves_nothing() -> None:
    layout = {"a:1": [0, 1, 2], "b:2": [3, 4, 5], "c:3": [6, 7]}
    assert plan_rebalance(places(layout), list(layout)) == []
