"""Semantic segmentation metrics: confusion matrix, per-class IoU, mIoU and pixel accuracy.

Pure NumPy, shared by training validation, ``training.evaluate`` and the runtime's rosbag
evaluation. The definitions are those of the official Cityscapes evaluator
(``cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling``): ground-truth pixels equal to
the ignore index are left out, a class that occurs neither in the ground truth nor in the
predictions has no IoU (NaN) and is left out of the mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from bialign_ros.classes import IGNORE_INDEX


def confusion_matrix(
    labels: np.ndarray, predictions: np.ndarray, num_classes: int, ignore_index: int = IGNORE_INDEX
) -> np.ndarray:
    """Count pixels per (ground truth, prediction) pair.

    ``labels`` and ``predictions`` are integer arrays of the same shape holding train IDs.
    Returns a ``num_classes x num_classes`` int64 matrix whose row is the ground-truth class
    and whose column is the predicted class. Ground-truth pixels equal to ``ignore_index`` are
    not counted; any other value outside ``[0, num_classes)`` is an error.
    """
    labels = np.asarray(labels)
    predictions = np.asarray(predictions)
    if labels.shape != predictions.shape:
        raise ValueError(f"labels {labels.shape} and predictions {predictions.shape} differ in shape")
    if num_classes < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    gt = labels.reshape(-1).astype(np.int64)
    pred = predictions.reshape(-1).astype(np.int64)
    keep = gt != ignore_index
    gt, pred = gt[keep], pred[keep]
    for name, values in (("ground-truth label", gt), ("prediction", pred)):
        bad = (values < 0) | (values >= num_classes)
        if bad.any():
            found = np.unique(values[bad])[:10].tolist()
            raise ValueError(
                f"{name} values {found} are outside 0..{num_classes - 1} "
                f"(and not the ignore index {ignore_index})"
            )
    counts = np.bincount(gt * num_classes + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64)


def per_class_iou(matrix: np.ndarray) -> np.ndarray:
    """IoU of each class, ``TP / (TP + FP + FN)``; NaN for a class absent from both axes."""
    matrix = _check_matrix(matrix)
    tp = np.diag(matrix).astype(np.float64)
    denom = matrix.sum(axis=0) + matrix.sum(axis=1) - np.diag(matrix)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denom > 0, tp / np.maximum(denom, 1), np.nan)


def mean_iou(matrix: np.ndarray) -> float:
    """Mean of the defined per-class IoUs (NaN when no class is defined)."""
    iou = per_class_iou(matrix)
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")


def pixel_accuracy(matrix: np.ndarray) -> float:
    """Fraction of counted pixels whose prediction is right (NaN when nothing was counted)."""
    matrix = _check_matrix(matrix)
    total = matrix.sum()
    return float(np.trace(matrix) / total) if total > 0 else float("nan")


def summarize(matrix: np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
    """JSON-ready summary: mIoU, pixel accuracy, per-class IoU (``None`` where undefined)."""
    matrix = _check_matrix(matrix)
    if len(class_names) != matrix.shape[0]:
        raise ValueError(f"{len(class_names)} class names for a {matrix.shape[0]}-class confusion matrix")
    iou = per_class_iou(matrix)
    return {
        "miou": _json_float(mean_iou(matrix)),
        "pixel_accuracy": _json_float(pixel_accuracy(matrix)),
        "per_class_iou": {name: _json_float(v) for name, v in zip(class_names, iou)},
        "num_pixels": int(matrix.sum()),
    }


class ConfusionMatrix:
    """Running confusion matrix over many images (add with :meth:`update`)."""

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = np.zeros((num_classes, num_classes), dtype=np.int64)

    def update(self, labels: np.ndarray, predictions: np.ndarray) -> None:
        """Add the pixels of one image (or a batch) of train IDs."""
        self.matrix += confusion_matrix(labels, predictions, self.num_classes, self.ignore_index)

    def iou(self) -> np.ndarray:
        """Per-class IoU so far (see :func:`per_class_iou`)."""
        return per_class_iou(self.matrix)

    def miou(self) -> float:
        """Mean IoU so far (see :func:`mean_iou`)."""
        return mean_iou(self.matrix)


def _check_matrix(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"a confusion matrix must be square, got shape {matrix.shape}")
    return matrix


def _json_float(value: float) -> float | None:
    return None if np.isnan(value) else float(value)
