"""The Cityscapes class table: names, label IDs, train IDs and colours.

Checkpoints carry their own class table; this is the default for Cityscapes models and the
source of truth for the synthetic scene generator. The values agree with the official
``cityscapesscripts.helpers.labels`` (a test checks it), so runtime code needs no extra
dependency.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

IGNORE_INDEX = 255
"""Train ID of pixels that belong to no class (unlabeled / void)."""


@dataclass(frozen=True)
class ClassInfo:
    """One evaluated class: its train ID is its index in :data:`CITYSCAPES_CLASSES`."""

    name: str
    label_id: int
    color: tuple[int, int, int]


CITYSCAPES_CLASSES: tuple[ClassInfo, ...] = (
    ClassInfo("road", 7, (128, 64, 128)),
    ClassInfo("sidewalk", 8, (244, 35, 232)),
    ClassInfo("building", 11, (70, 70, 70)),
    ClassInfo("wall", 12, (102, 102, 156)),
    ClassInfo("fence", 13, (190, 153, 153)),
    ClassInfo("pole", 17, (153, 153, 153)),
    ClassInfo("traffic light", 19, (250, 170, 30)),
    ClassInfo("traffic sign", 20, (220, 220, 0)),
    ClassInfo("vegetation", 21, (107, 142, 35)),
    ClassInfo("terrain", 22, (152, 251, 152)),
    ClassInfo("sky", 23, (70, 130, 180)),
    ClassInfo("person", 24, (220, 20, 60)),
    ClassInfo("rider", 25, (255, 0, 0)),
    ClassInfo("car", 26, (0, 0, 142)),
    ClassInfo("truck", 27, (0, 0, 70)),
    ClassInfo("bus", 28, (0, 60, 100)),
    ClassInfo("train", 31, (0, 80, 100)),
    ClassInfo("motorcycle", 32, (0, 0, 230)),
    ClassInfo("bicycle", 33, (119, 11, 32)),
)

CITYSCAPES_NAMES: tuple[str, ...] = tuple(c.name for c in CITYSCAPES_CLASSES)
CITYSCAPES_COLORS: tuple[tuple[int, int, int], ...] = tuple(c.color for c in CITYSCAPES_CLASSES)
NUM_CLASSES = len(CITYSCAPES_CLASSES)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def train_id_to_label_id_lut() -> np.ndarray:
    """Return a 256-entry uint8 lookup table from train ID to Cityscapes label ID.

    Train ID 255 (and any unused entry) maps to label ID 0 ("unlabeled"), which is what the
    official benchmark expects in prediction files.
    """
    lut = np.zeros(256, dtype=np.uint8)
    for train_id, info in enumerate(CITYSCAPES_CLASSES):
        lut[train_id] = info.label_id
    return lut


DEFAULT_FREE_SPACE_CLASSES: tuple[str, ...] = ("road",)
"""Class names whose pixels are ground a vehicle may drive on."""

DEFAULT_OBSTACLE_CLASSES: tuple[str, ...] = (
    "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
    "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
)
"""Class names of things standing on the ground: every Cityscapes person, vehicle and object class
and the vertical stuff classes (building, wall, fence, vegetation). Sidewalk, terrain and sky are
neither free nor obstacles: their cells stay unknown unless another pixel decides them
(see :mod:`bialign_ros.ground_grid`)."""


def class_lookup(names: Iterable[str], class_names: Sequence[str]) -> np.ndarray:
    """A 256-entry boolean table, true at the train IDs of ``names`` within the model's ``class_names``.

    Raises ValueError naming any class the model does not have.
    """
    names = list(names)
    unknown = [name for name in names if name not in class_names]
    if unknown:
        raise ValueError(f"unknown class name(s) {unknown}; the model's classes are: {', '.join(class_names)}")
    lut = np.zeros(256, dtype=bool)
    lut[[class_names.index(name) for name in names]] = True
    return lut
