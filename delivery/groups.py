"""Leaving the consumer group when a consumers process stops cleanly.

A consumer's name stays in a stream's group after its process stopped: ``courier
stats`` and the console would list it, dead, until housekeeping forgets it an hour
later. On a clean stop each partition's ``leave.lua`` removes it (``XGROUP
DELCONSUMER``) from every stream where it holds no entry; where it still holds some
(in-flight records of sent messages, waiting for their ack or for another consumer to
reclaim them) it stays, because removing it would drop them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from .keys import Keyspace
from .scripts import Scripts


@dataclass(frozen=True, slots=True)
class Leave:
    """``leave.lua``: leave the group of the partition's streams where the consumer
    holds nothing; answers in how many streams it still holds entries."""

    SCRIPT: ClassVar[str] = "leave"
    prefix: str
    consumer: str

    def args(self) -> list[Any]:
        return [self.consumer]

    def parse(self, reply: Any) -> int:
        return int(reply)


async def leave(
    scripts: Scripts, keyspace: Keyspace, partitions: Iterable[int], consumer: str
) -> int:
    """Leave the group in every partition; the number of streams that keep the
    consumer because it still holds entries there."""
    calls = [Leave(keyspace.part(p), consumer) for p in partitions]
    return sum(await scripts.run_many(calls)) if calls else 0
