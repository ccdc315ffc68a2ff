"""Scoring what a running system delivered: labels matched to ground truth by stamp, drops counted.

Labels arrive in stamp order (the node processes frames in order), so ground truth older than
the newest labels (beyond the tolerance) will never get its own labels: that frame was dropped.
Two views are kept, both with :mod:`bialign_ros.metrics`:

- ``delivered``: the frames that got labels, each scored with its own labels;
- ``held`` (the headline): every ground-truth frame, a dropped one scored with the newest labels
  delivered before it, as a consumer that keeps the last labels sees the scene. Frames dropped
  before the first labels arrived have nothing to score and are only counted.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bialign_ros.metrics import ConfusionMatrix, summarize
from bialign_ros.timing import latency_summary

LABEL_HISTORY = 32
"""Delivered label images kept for scoring dropped frames (and labels awaiting their ground truth)."""


@dataclass
class _Truth:
    labels: np.ndarray
    arrived: float


class LiveScorer:
    """Accumulates the live scores; feed it with :meth:`add_truth` and :meth:`add_labels`."""

    def __init__(self, class_names: Sequence[str], tolerance_ns: int, ignore_index: int = 255) -> None:
        if tolerance_ns < 0:
            raise ValueError(f"stamp tolerance must be >= 0 ns, got {tolerance_ns}")
        self.class_names = tuple(class_names)
        self.tolerance = int(tolerance_ns)
        self.delivered = ConfusionMatrix(len(class_names), ignore_index)
        self.held = ConfusionMatrix(len(class_names), ignore_index)
        self._pending: dict[int, _Truth] = {}
        self._history: deque[tuple[int, np.ndarray, float]] = deque(maxlen=LABEL_HISTORY)
        self._early: dict[int, tuple[np.ndarray, float]] = {}
        self._newest_labels: int | None = None
        self.truth_frames = 0
        self.label_frames = 0
        self.matched_stamps: list[int] = []
        self.dropped_stamps: list[int] = []
        self.dropped_before_first_labels = 0
        self.delays: list[float] = []

    def add_truth(self, stamp: int, labels: np.ndarray, arrived: float) -> None:
        """Ground truth of the frame stamped ``stamp`` (ns), received at time ``arrived`` (s)."""
        self.truth_frames += 1
        early = self._closest(self._early, stamp)
        if early is not None:
            predicted, label_arrival = self._early.pop(early)
            self._score_delivered(stamp, labels, predicted, label_arrival - arrived)
        elif self._newest_labels is not None and stamp < self._newest_labels - self.tolerance:
            self._score_dropped(stamp, labels)
        else:
            self._pending[stamp] = _Truth(labels, arrived)

    def add_labels(self, stamp: int, labels: np.ndarray, arrived: float) -> None:
        """Labels the system delivered for the frame stamped ``stamp`` (ns), received at ``arrived`` (s)."""
        self.label_frames += 1
        match = self._closest(self._pending, stamp)
        if match is not None:
            truth = self._pending.pop(match)
            self._score_delivered(match, truth.labels, labels, arrived - truth.arrived)
        else:
            self._early[stamp] = (labels, arrived)
            while len(self._early) > LABEL_HISTORY:
                self._early.pop(min(self._early))
        for old in sorted(s for s in self._pending if s < stamp - self.tolerance):
            self._score_dropped(old, self._pending.pop(old).labels)
        self._history.append((stamp, labels, arrived))
        self._newest_labels = stamp if self._newest_labels is None else max(self._newest_labels, stamp)

    @property
    def resolved(self) -> int:
        """Ground-truth frames scored with their labels or counted as dropped so far."""
        return len(self.matched_stamps) + len(self.dropped_stamps)

    def finish(self) -> None:
        """Count the ground truth still waiting as dropped (the run has ended)."""
        for stamp in sorted(self._pending):
            self._score_dropped(stamp, self._pending.pop(stamp).labels)

    def _closest(self, items: dict[int, Any], stamp: int) -> int | None:
        near = [s for s in items if abs(s - stamp) <= self.tolerance]
        return min(near, key=lambda s: abs(s - stamp)) if near else None

    def _score_delivered(self, stamp: int, truth: np.ndarray, predicted: np.ndarray, delay: float) -> None:
        if truth.shape != predicted.shape:
            raise ValueError(f"labels at stamp {stamp} ns are {predicted.shape[1]}x{predicted.shape[0]} "
                             f"but the ground truth is {truth.shape[1]}x{truth.shape[0]}")
        self.delivered.update(truth, predicted)
        self.held.update(truth, predicted)
        self.matched_stamps.append(stamp)
        if delay >= 0:
            self.delays.append(delay)

    def _score_dropped(self, stamp: int, truth: np.ndarray) -> None:
        self.dropped_stamps.append(stamp)
        stamps = [s for s, _, _ in self._history]
        index = bisect.bisect_right(stamps, stamp) - 1
        if index < 0:
            self.dropped_before_first_labels += 1
            return
        previous = self._history[index][1]
        if previous.shape == truth.shape:
            self.held.update(truth, previous)

    def summary(self) -> dict[str, Any]:
        """JSON-ready results: the held (real-time) mIoU, the delivered-only mIoU and the counts."""
        held = summarize(self.held.matrix, self.class_names)
        delivered = summarize(self.delivered.matrix, self.class_names)
        return {
            "miou": held["miou"],
            "pixel_accuracy": held["pixel_accuracy"],
            "per_class_iou": held["per_class_iou"],
            "delivered": {k: delivered[k] for k in ("miou", "pixel_accuracy", "per_class_iou")},
            "frames": {
                "ground_truth": self.truth_frames,
                "labels": self.label_frames,
                "matched": len(self.matched_stamps),
                "dropped": len(self.dropped_stamps),
                "dropped_before_first_labels": self.dropped_before_first_labels,
                "labels_without_ground_truth": self.label_frames - len(self.matched_stamps),
                "drop_ratio": len(self.dropped_stamps) / self.truth_frames if self.truth_frames else None,
            },
            "label_delay": latency_summary(self.delays) if self.delays else None,
            "stamp_tolerance_ms": self.tolerance / 1e6,
            "matched_stamps": sorted(self.matched_stamps),
            "dropped_stamps": sorted(self.dropped_stamps),
        }
