"""The ids the app was handed lately, so a redelivery (same id, ``attempt`` + 1) is
acked again but not handed over twice. Bounded: the oldest ids are forgotten first
(the server redelivers within minutes, so the last few thousand ids are plenty)."""

from __future__ import annotations

from collections import OrderedDict


class SeenIds:
    """id -> whether the app acked it, for at most ``size`` ids."""

    def __init__(self, size: int = 10_000) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        self.size = size
        self._ids: OrderedDict[str, bool] = OrderedDict()

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, mid: object) -> bool:
        return mid in self._ids

    def get(self, mid: str) -> bool | None:
        """None: not seen; False: handed over, not acked yet; True: acked."""
        return self._ids.get(mid)

    def add(self, mid: str, *, acked: bool = False) -> None:
        """Remember ``mid`` (as the newest); an acked id stays acked."""
        self._ids[mid] = acked or self._ids.get(mid, False)
        self._ids.move_to_end(mid)
        while len(self._ids) > self.size:
            self._ids.popitem(last=False)
