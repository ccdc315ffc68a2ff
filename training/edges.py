"""Binary edge ground truth derived from a train-ID label map.

As in the authors' data pipeline: the outer and inner contours of every class region are drawn
``width`` pixels thick on the final training crop, and a ``width + 1`` pixel frame along the
image border is cleared, because a region touching the border has a contour along it that is no
boundary between classes.
"""

from __future__ import annotations

import cv2
import numpy as np

from bialign_ros.classes import IGNORE_INDEX


def edges_from_labels(
    labels: np.ndarray, num_classes: int, width: int = 2, ignore_index: int = IGNORE_INDEX
) -> np.ndarray:
    """Return an H x W uint8 map, 1 on class boundaries and 0 elsewhere.

    ``labels`` is an H x W integer array of train IDs; pixels equal to ``ignore_index`` belong
    to no class, so the edge of a class region facing an ignored area counts as a boundary.
    """
    if labels.ndim != 2:
        raise ValueError(f"labels must be an H x W array, got shape {labels.shape}")
    if width < 1:
        raise ValueError(f"edge width must be >= 1, got {width}")
    canvas = np.zeros(labels.shape, dtype=np.uint8)
    present = np.unique(labels)
    for class_id in present[(present != ignore_index) & (present < num_classes)]:
        mask = (labels == class_id).astype(np.uint8)
        contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(canvas, contours, -1, 1, width)
    border = width + 1
    canvas[:border, :] = 0
    canvas[-border:, :] = 0
    canvas[:, :border] = 0
    canvas[:, -border:] = 0
    return canvas
