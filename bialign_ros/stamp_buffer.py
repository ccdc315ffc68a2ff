"""The last few messages of a live stream, looked up by the stamp nearest to another stream's.

A live node pairs each camera frame with the depth image of the nearest stamp that has already
arrived, without waiting for later ones; bag replay, which may wait, uses
:class:`bialign_ros.bags.matching.StampMatcher` instead.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class RecentByStamp(Generic[T]):
    """Holds the last ``capacity`` items with their stamps (nanoseconds)."""

    def __init__(self, tolerance_ns: int, capacity: int = 8) -> None:
        if tolerance_ns < 0:
            raise ValueError(f"stamp tolerance must be >= 0 ns, got {tolerance_ns}")
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.tolerance = int(tolerance_ns)
        self._items: deque[tuple[int, T]] = deque(maxlen=capacity)

    def add(self, stamp: int, item: T) -> None:
        """Keep ``item``; the oldest one held goes when the buffer is full."""
        self._items.append((int(stamp), item))

    def __len__(self) -> int:
        return len(self._items)

    def describe(self) -> str:
        """The held stamps, oldest first, in seconds (for messages)."""
        return ", ".join(f"{stamp * 1e-9:.3f} s" for stamp, _ in self._items) or "none"

    def nearest(self, stamp: int) -> T | None:
        """The held item whose stamp is nearest to ``stamp``, or None when none is within the tolerance."""
        best: tuple[int, T] | None = None
        for held in self._items:
            if abs(held[0] - stamp) <= self.tolerance and (best is None or abs(held[0] - stamp) < abs(best[0] - stamp)):
                best = held
        return None if best is None else best[1]
