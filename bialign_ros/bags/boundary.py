"""Boundary F-score of predicted labels and of the edge map against ground-truth class boundaries.

A boundary pixel is a pixel with a 4-neighbour of another class (both sides of a boundary are
marked, so boundaries are two pixels wide, like the edge head's training target). Ground-truth
pixels of the ignore index count as a class of their own when boundaries are found, so the edge
of a region facing an unlabelled area is a boundary, but no boundary pixel that lies on an
ignored pixel is scored, in the ground truth or in the prediction.

A predicted boundary pixel is correct when a ground-truth boundary pixel lies within
``tolerance_px`` (Euclidean); a ground-truth boundary pixel is found when a predicted one does.
Counts are summed over all frames, then precision P, recall R and F = 2PR / (P + R). As in the
DAVIS boundary measure used by the authors: with no predicted boundary P = 1, with no
ground-truth boundary R = 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from bialign_ros.classes import IGNORE_INDEX


def label_boundaries(labels: np.ndarray) -> np.ndarray:
    """H x W bool map of the pixels that have a 4-neighbour with a different value."""
    if labels.ndim != 2:
        raise ValueError(f"labels must be an H x W array, got shape {labels.shape}")
    out = np.zeros(labels.shape, dtype=bool)
    horizontal = labels[:, 1:] != labels[:, :-1]
    vertical = labels[1:, :] != labels[:-1, :]
    out[:, 1:] |= horizontal
    out[:, :-1] |= horizontal
    out[1:, :] |= vertical
    out[:-1, :] |= vertical
    return out


def near(reference: np.ndarray, tolerance_px: float) -> np.ndarray:
    """Bool map of the pixels within ``tolerance_px`` (Euclidean) of a True pixel of ``reference``."""
    if not reference.any():
        return np.zeros(reference.shape, dtype=bool)
    distance = cv2.distanceTransform((~reference).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return distance <= tolerance_px


@dataclass
class BoundaryCounts:
    """Boundary pixels and matched boundary pixels, summed over frames."""

    predicted: int = 0
    predicted_matched: int = 0
    truth: int = 0
    truth_matched: int = 0

    def add(self, predicted: np.ndarray, truth: np.ndarray, tolerance_px: float) -> None:
        """Count one frame's predicted and ground-truth boundary maps (H x W bool)."""
        if predicted.shape != truth.shape:
            raise ValueError(f"predicted boundaries {predicted.shape} and ground truth {truth.shape} "
                             "differ in shape")
        self.predicted += int(predicted.sum())
        self.truth += int(truth.sum())
        self.predicted_matched += int((predicted & near(truth, tolerance_px)).sum())
        self.truth_matched += int((truth & near(predicted, tolerance_px)).sum())

    @property
    def precision(self) -> float:
        """Fraction of predicted boundary pixels near a ground-truth boundary (1 with none predicted)."""
        return self.predicted_matched / self.predicted if self.predicted else 1.0

    @property
    def recall(self) -> float:
        """Fraction of ground-truth boundary pixels near a predicted one (1 without ground truth ones)."""
        return self.truth_matched / self.truth if self.truth else 1.0

    @property
    def f_score(self) -> float:
        """Harmonic mean of precision and recall (0 when both are 0)."""
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r > 0 else 0.0

    def summary(self) -> dict[str, float | int]:
        """JSON-ready F-score, precision, recall and pixel counts."""
        return {"f_score": self.f_score, "precision": self.precision, "recall": self.recall,
                "predicted_pixels": self.predicted, "truth_pixels": self.truth}


class BoundaryEvaluator:
    """Accumulates the boundary F-scores of label maps and edge maps over frames."""

    def __init__(self, tolerance_px: float = 3.0, edge_threshold: float = 0.5,
                 ignore_index: int = IGNORE_INDEX) -> None:
        if tolerance_px < 0:
            raise ValueError(f"boundary tolerance must be >= 0 pixels, got {tolerance_px}")
        if not 0.0 < edge_threshold < 1.0:
            raise ValueError(f"edge threshold must be in (0, 1), got {edge_threshold}")
        self.tolerance_px = float(tolerance_px)
        self.edge_threshold = float(edge_threshold)
        self.ignore_index = ignore_index
        self.labels = BoundaryCounts()
        self.edges = BoundaryCounts()

    def update(self, truth: np.ndarray, labels: np.ndarray, edges: np.ndarray | None = None) -> None:
        """Add one frame: ground-truth and predicted H x W labels, and the H x W edge probability."""
        if truth.shape != labels.shape:
            raise ValueError(f"ground truth {truth.shape} and labels {labels.shape} differ in shape")
        scored = truth != self.ignore_index
        truth_boundary = label_boundaries(truth) & scored
        self.labels.add(label_boundaries(labels) & scored, truth_boundary, self.tolerance_px)
        if edges is not None:
            if edges.shape != truth.shape:
                raise ValueError(f"edge map {edges.shape} and ground truth {truth.shape} differ in shape")
            self.edges.add((edges >= self.edge_threshold) & scored, truth_boundary, self.tolerance_px)

    def summary(self) -> dict[str, object]:
        """JSON-ready scores of the labels and of the edge map, with the settings used."""
        return {"tolerance_px": self.tolerance_px, "edge_threshold": self.edge_threshold,
                "labels": self.labels.summary(), "edges": self.edges.summary()}
