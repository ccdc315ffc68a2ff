"""How far the confidence can be trusted, and how well free space is found (pure NumPy).

:class:`ConfidenceCalibration` accumulates, over labelled pixels, a reliability histogram of the
confidence (the softmax probability of each pixel's predicted class) in equal-width bins: pixel
count, mean confidence and accuracy per bin. The expected calibration error is
``sum_b (n_b / N) |accuracy_b - confidence_b|`` (Guo et al., 2017), 15 bins by default.
:class:`FreeSpaceIoU` is the IoU of the predicted free space against the ground truth's pixels of
the free-space classes. Pixels whose ground truth is the ignore index count in neither.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bialign_ros.classes import IGNORE_INDEX

CALIBRATION_BINS = 15


class ConfidenceCalibration:
    """Reliability histogram of the confidence over the pixels with ground truth."""

    def __init__(self, bins: int = CALIBRATION_BINS, ignore_index: int = IGNORE_INDEX) -> None:
        if bins < 1:
            raise ValueError(f"bins must be >= 1, got {bins}")
        self.bins = bins
        self.ignore_index = ignore_index
        self.count = np.zeros(bins, np.int64)
        self.confidence_sum = np.zeros(bins, np.float64)
        self.correct = np.zeros(bins, np.int64)

    def update(self, truth: np.ndarray, labels: np.ndarray, confidence: np.ndarray) -> None:
        """Add one frame: ground-truth train IDs, predicted labels and their confidence in [0, 1]."""
        if not truth.shape == labels.shape == confidence.shape:
            raise ValueError(f"truth {truth.shape}, labels {labels.shape} and confidence {confidence.shape} differ")
        valid = truth != self.ignore_index
        conf = confidence[valid].astype(np.float64)
        # Bin b holds (b / bins, (b + 1) / bins]; a confidence of exactly 0 goes to the first bin.
        index = np.clip(np.ceil(conf * self.bins).astype(np.int64) - 1, 0, self.bins - 1)
        self.count += np.bincount(index, minlength=self.bins)
        self.confidence_sum += np.bincount(index, weights=conf, minlength=self.bins)
        self.correct += np.bincount(index, weights=(labels[valid] == truth[valid]), minlength=self.bins).astype(
            np.int64)

    @property
    def pixels(self) -> int:
        """Pixels counted so far."""
        return int(self.count.sum())

    def accuracy(self) -> np.ndarray:
        """Fraction of correct labels per bin (NaN for an empty bin)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.correct / self.count

    def mean_confidence(self) -> np.ndarray:
        """Mean confidence per bin (NaN for an empty bin)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.confidence_sum / self.count

    def expected_calibration_error(self) -> float:
        """ECE over the bins, weighted by their pixel counts; NaN before any pixel."""
        if not self.pixels:
            return float("nan")
        filled = self.count > 0
        gap = np.abs(self.accuracy()[filled] - self.mean_confidence()[filled])
        return float((self.count[filled] / self.pixels * gap).sum())

    def summary(self) -> dict[str, Any]:
        """JSON-ready: ECE, bin count, pixels, and per bin its edges, count, accuracy and confidence."""
        edges = np.linspace(0.0, 1.0, self.bins + 1)
        accuracy, confidence = self.accuracy(), self.mean_confidence()
        return {
            "ece": _json(self.expected_calibration_error()), "bins": self.bins, "pixels": self.pixels,
            "reliability": [{"low": float(edges[b]), "high": float(edges[b + 1]), "pixels": int(self.count[b]),
                             "accuracy": _json(accuracy[b]), "confidence": _json(confidence[b])}
                            for b in range(self.bins)],
        }


class FreeSpaceIoU:
    """IoU of predicted free space with the ground truth's free-space classes."""

    def __init__(self, free_lut: np.ndarray, ignore_index: int = IGNORE_INDEX) -> None:
        self.free_lut = free_lut
        self.ignore_index = ignore_index
        self.intersection = self.union = 0

    def update(self, truth: np.ndarray, free_space: np.ndarray) -> None:
        """Add one frame: ground-truth train IDs and the H x W bool predicted free space."""
        if truth.shape != free_space.shape:
            raise ValueError(f"truth {truth.shape} and free space {free_space.shape} differ")
        valid = truth != self.ignore_index
        actual = self.free_lut[truth] & valid
        predicted = free_space & valid
        self.intersection += int(np.count_nonzero(actual & predicted))
        self.union += int(np.count_nonzero(actual | predicted))

    def iou(self) -> float:
        """The IoU so far; NaN when neither has any free space."""
        return self.intersection / self.union if self.union else float("nan")


def _json(value: float) -> float | None:
    return None if np.isnan(value) else float(value)
