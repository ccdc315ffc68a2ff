"""One rendered frame: the RGB image and its exactly aligned Cityscapes annotations."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bialign_ros.classes import CITYSCAPES_COLORS, train_id_to_label_id_lut

_LABEL_LUT = train_id_to_label_id_lut()
_COLOR_LUT = np.zeros((256, 3), dtype=np.uint8)
_COLOR_LUT[: len(CITYSCAPES_COLORS)] = CITYSCAPES_COLORS


@dataclass(frozen=True, eq=False)
class SceneFrame:
    """A synthetic camera frame.

    ``image`` is H x W x 3 uint8 RGB; ``train_ids`` is H x W uint8 with Cityscapes train IDs
    (255 = void); ``instance_ids`` is H x W uint16 in the Cityscapes ``instanceIds`` encoding
    (label_id * 1000 + index for person, rider and vehicle instances, the label ID elsewhere).
    """

    image: np.ndarray
    train_ids: np.ndarray
    instance_ids: np.ndarray

    @property
    def label_ids(self) -> np.ndarray:
        """H x W uint8 Cityscapes label IDs; void pixels are 0 ('unlabeled')."""
        return _LABEL_LUT[self.train_ids]

    @property
    def color(self) -> np.ndarray:
        """H x W x 3 uint8 RGB colour rendering of the labels in the Cityscapes palette (void black)."""
        return _COLOR_LUT[self.train_ids]
