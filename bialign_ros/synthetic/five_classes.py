"""A five-class table over the synthetic scenes: what a robot builder's own classes look like.

Models fine-tuned on one's own classes carry their own class table in the checkpoint. Tests of
that path need ground truth in such a table; this module relabels the scenes' Cityscapes train
IDs into five classes with their own colours (none of them a Cityscapes colour).
"""

from __future__ import annotations

import numpy as np

from bialign_ros.classes import CITYSCAPES_NAMES, IGNORE_INDEX

FIVE_CLASS_NAMES: tuple[str, ...] = ("road", "sidewalk", "vehicle", "person", "other")
FIVE_CLASS_COLORS: tuple[tuple[int, int, int], ...] = (
    (255, 128, 0), (0, 200, 255), (200, 0, 200), (0, 255, 0), (128, 128, 0),
)
_MEMBERS = {
    "road": ("road",),
    "sidewalk": ("sidewalk",),
    "vehicle": ("car", "truck", "bus", "train", "motorcycle", "bicycle"),
    "person": ("person", "rider"),
}


def _lookup() -> np.ndarray:
    other = FIVE_CLASS_NAMES.index("other")
    lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    lut[: len(CITYSCAPES_NAMES)] = other
    for name, members in _MEMBERS.items():
        for member in members:
            lut[CITYSCAPES_NAMES.index(member)] = FIVE_CLASS_NAMES.index(name)
    return lut


_LUT = _lookup()


def to_five_classes(train_ids: np.ndarray) -> np.ndarray:
    """Cityscapes train IDs (uint8, any shape) as train IDs of :data:`FIVE_CLASS_NAMES`.

    road and sidewalk stay themselves; car, truck, bus, train, motorcycle and bicycle become
    vehicle; person and rider become person; every other class becomes other; 255 (ignore) and
    any value outside the Cityscapes table stay 255.
    """
    if train_ids.dtype != np.uint8:
        raise ValueError(f"train IDs must be uint8, got {train_ids.dtype}")
    return _LUT[train_ids]
