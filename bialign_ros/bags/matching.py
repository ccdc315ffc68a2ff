"""Pairing camera frames with ground truth by header stamp, within a tolerance, as they stream in.

Bags interleave topics by log time; frames and ground truth of the same instant may be logged in
either order, some frames have no ground truth and some ground truth has no frame. The matcher
holds items only until their partner can no longer arrive, assuming each stream's stamps do not
decrease (an out-of-order item still matches while its partner is held).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

F = TypeVar("F")
G = TypeVar("G")


@dataclass
class Pair(Generic[F, G]):
    """A frame with its ground truth, a frame without, or ground truth without a frame."""

    frame_stamp: int | None
    frame: F | None
    truth_stamp: int | None
    truth: G | None


@dataclass(order=True)
class _Held(Generic[F]):
    stamp: int
    seq: int
    item: F = field(compare=False)


class StampMatcher(Generic[F, G]):
    """One-to-one nearest-stamp matching of a frame stream and a ground-truth stream.

    A frame is paired with the nearest held ground truth within ``tolerance_ns`` once ground
    truth at or after its stamp has been seen (no later one can be nearer) or at :meth:`finish`.
    Pairs come out in frame-stamp order, with unmatched ground truth in between.
    """

    def __init__(self, tolerance_ns: int) -> None:
        if tolerance_ns < 0:
            raise ValueError(f"stamp tolerance must be >= 0 ns, got {tolerance_ns}")
        self.tolerance = int(tolerance_ns)
        self._frames: list[_Held[F]] = []
        self._truths: list[_Held[G]] = []
        self._frame_mark: int | None = None
        self._truth_mark: int | None = None
        self._seq = 0

    def add_frame(self, stamp: int, frame: F) -> list[Pair[F, G]]:
        """Hold a frame; returns the pairs this resolves."""
        self._seq += 1
        bisect.insort(self._frames, _Held(stamp, self._seq, frame))
        self._frame_mark = stamp if self._frame_mark is None else max(self._frame_mark, stamp)
        return list(self._drain(final=False))

    def add_truth(self, stamp: int, truth: G) -> list[Pair[F, G]]:
        """Hold ground truth; returns the pairs this resolves."""
        self._seq += 1
        bisect.insort(self._truths, _Held(stamp, self._seq, truth))
        self._truth_mark = stamp if self._truth_mark is None else max(self._truth_mark, stamp)
        return list(self._drain(final=False))

    def finish(self) -> list[Pair[F, G]]:
        """Resolve everything still held (the streams have ended)."""
        return list(self._drain(final=True))

    @property
    def pending(self) -> int:
        """Number of items held."""
        return len(self._frames) + len(self._truths)

    def _drain(self, final: bool) -> Iterator[Pair[F, G]]:
        tol = self.tolerance
        while self._frames:
            frame = self._frames[0]
            if not final and (self._truth_mark is None or self._truth_mark < frame.stamp):
                break
            while self._truths and self._truths[0].stamp < frame.stamp - tol:
                old = self._truths.pop(0)
                yield Pair(None, None, old.stamp, old.item)
            best, best_distance = None, tol + 1
            for i, truth in enumerate(self._truths):
                if truth.stamp > frame.stamp + tol:
                    break
                if abs(truth.stamp - frame.stamp) < best_distance:
                    best, best_distance = i, abs(truth.stamp - frame.stamp)
            self._frames.pop(0)
            if best is None:
                yield Pair(frame.stamp, frame.item, None, None)
            else:
                truth = self._truths.pop(best)
                yield Pair(frame.stamp, frame.item, truth.stamp, truth.item)
        # Ground truth no held or future frame can reach any more.
        while self._truths and (final or self._unreachable(self._truths[0].stamp)):
            old = self._truths.pop(0)
            yield Pair(None, None, old.stamp, old.item)

    def _unreachable(self, stamp: int) -> bool:
        if self._frame_mark is None or stamp >= self._frame_mark - self.tolerance:
            return False
        return not self._frames or stamp < self._frames[0].stamp - self.tolerance
