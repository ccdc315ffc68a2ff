"""The Cityscapes class table (names, label IDs, train IDs and colours) and the ground classes.

Checkpoints carry their own class table; this is the default for Cityscapes models and the
source of truth for the synthetic scene generator. The values agree with the official
``cityscapesscripts.helpers.labels`` (a test checks it), so runtime code needs no extra
dependency. Which classes of a model (of any class table) are free space and which are
obstacles is decided here too (:func:`free_space_classes_for`, :func:`obstacle_classes_for`).
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

NEVER_OBSTACLES: tuple[str, ...] = ("road", "sidewalk", "terrain", "sky")
"""Class names that are no obstacle by default: ground one may stand on, and the sky (see
:func:`default_obstacle_classes`). Their cells stay unknown unless another pixel decides them
(see :mod:`bialign_ros.ground_grid`)."""


def default_obstacle_classes(class_names: Sequence[str], free_space_classes: Iterable[str]) -> tuple[str, ...]:
    """The obstacle classes of a model by default: every class of ``class_names`` that is neither a
    free-space class nor one of :data:`NEVER_OBSTACLES`, in train-ID order."""
    excluded = set(free_space_classes) | set(NEVER_OBSTACLES)
    return tuple(name for name in class_names if name not in excluded)


DEFAULT_OBSTACLE_CLASSES: tuple[str, ...] = default_obstacle_classes(CITYSCAPES_NAMES, DEFAULT_FREE_SPACE_CLASSES)
"""The default obstacle classes of a Cityscapes model: every person, vehicle and object class and the
vertical stuff classes (building, wall, fence, vegetation)."""


def free_space_classes_for(class_names: Sequence[str],
                           given: Sequence[str] = DEFAULT_FREE_SPACE_CLASSES) -> tuple[str, ...]:
    """The free-space classes of a model whose classes are ``class_names``.

    ``given`` equal to :data:`DEFAULT_FREE_SPACE_CLASSES` keeps those of the defaults the model has
    (none for a model without a road class); any other value must name classes of the model, else
    ValueError naming the unknown ones.
    """
    if tuple(given) == DEFAULT_FREE_SPACE_CLASSES:
        return tuple(name for name in given if name in class_names)
    class_lookup(given, class_names)
    return tuple(given)


def no_free_space_note(given: Sequence[str], class_names: Sequence[str]) -> str | None:
    """Why a model has no free-space class under the given (default) ones, or None when it has some."""
    if not given or free_space_classes_for(class_names, given):
        return None
    return (f"the model has none of the default free-space classes {list(given)} (its classes: "
            f"{', '.join(class_names)}), so free space is empty; name the classes a vehicle may drive on")


def obstacle_classes_for(class_names: Sequence[str], free_space_classes: Iterable[str],
                         given: Sequence[str] = DEFAULT_OBSTACLE_CLASSES) -> tuple[str, ...]:
    """The obstacle classes of a model whose classes are ``class_names``, free space being ``free_space_classes``.

    ``given`` equal to :data:`DEFAULT_OBSTACLE_CLASSES` stands for :func:`default_obstacle_classes`
    of the model (for a Cityscapes model with free space road: those very names); any other value
    must name classes of the model, else ValueError naming the unknown ones.
    """
    if tuple(given) == DEFAULT_OBSTACLE_CLASSES:
        return default_obstacle_classes(class_names, free_space_classes)
    class_lookup(given, class_names)
    return tuple(given)


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
