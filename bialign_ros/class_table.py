"""The classes a data set is labelled with, and how its label values become train IDs.

Cityscapes data uses the official table (34 label IDs -> 19 train IDs). A data set of one's own
classes carries a ``classes.yaml`` beside its ``images/`` and ``labels/`` folders::

    ignore: [0, 255]            # label values of pixels that belong to no class (int or list)
    classes:                    # in train-ID order: the model's output channels
      - name: road
        color: [128, 64, 128]   # RGB of the colour image the node publishes
        values: [1]             # the label values that map to this class
      - name: vehicle
        color: [0, 0, 142]
        values: [4, 5, 6]

Train IDs are the positions in ``classes``; ignored pixels get :data:`IGNORE_INDEX`. The training
package reads data sets with it, ``bialign_make_bag --classes`` writes their ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from bialign_ros.classes import CITYSCAPES_COLORS, CITYSCAPES_NAMES, IGNORE_INDEX

CLASSES_FILE = "classes.yaml"


class ClassTableError(ValueError):
    """A ``classes.yaml`` is malformed, or a label map holds a value no class claims."""


@dataclass(frozen=True)
class ClassTable:
    """Class names and colours in train-ID order, and the label-value -> train-ID table."""

    names: tuple[str, ...]
    colors: tuple[tuple[int, int, int], ...]
    lut: np.ndarray = field(compare=False, repr=False)
    """256 uint8 entries: train ID of every label value, :data:`IGNORE_INDEX` for ignored values."""
    claimed: np.ndarray = field(compare=False, repr=False)
    """256 bools: the label values a class or the ignore list names (others are errors)."""

    @property
    def num_classes(self) -> int:
        """Number of classes (the model's output channels)."""
        return len(self.names)

    def label_values(self) -> np.ndarray:
        """256 uint8 entries: a train ID's first label value (for prediction images); ignore -> 255."""
        out = np.full(256, IGNORE_INDEX, dtype=np.uint8)
        for value in range(255, -1, -1):  # descending, so the smallest value of a class wins
            if self.lut[value] != IGNORE_INDEX:
                out[self.lut[value]] = value
        return out

    def check_label_map(self, label: np.ndarray, where: str | Path) -> None:
        """Raise :class:`ClassTableError` naming the values of ``label`` that no class claims."""
        values = np.unique(label)
        stray = values[~self.claimed[values]]
        if stray.size:
            raise ClassTableError(
                f"{where} holds label value(s) {stray.tolist()} that no class in {CLASSES_FILE} claims "
                f"and that are not ignored; add them to a class's values or to ignore"
            )


@lru_cache(maxsize=1)
def cityscapes_table() -> ClassTable:
    """The 19 Cityscapes classes, with label IDs mapped by ``cityscapesscripts``' table."""
    from cityscapesscripts.helpers.labels import labels

    lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    for label in labels:
        if 0 <= label.id < 256 and 0 <= label.trainId < IGNORE_INDEX:
            lut[label.id] = label.trainId
    return ClassTable(CITYSCAPES_NAMES, CITYSCAPES_COLORS, lut, np.ones(256, dtype=bool))


def read_classes_yaml(path: str | Path) -> ClassTable:
    """Read and validate a ``classes.yaml``; every problem raises :class:`ClassTableError` naming it."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ClassTableError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("classes"), list) or not data["classes"]:
        raise ClassTableError(f"{path}: expected a mapping with a non-empty 'classes' list")
    unknown = sorted(set(data) - {"classes", "ignore"})
    if unknown:
        raise ClassTableError(f"{path}: unknown keys {unknown}; valid keys: classes, ignore")
    if len(data["classes"]) >= IGNORE_INDEX:
        raise ClassTableError(f"{path}: {len(data['classes'])} classes; at most {IGNORE_INDEX - 1}")
    ignore = data.get("ignore", [])
    ignore = _values(ignore if isinstance(ignore, list) else [ignore], f"{path}: ignore")
    lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    claimed = np.zeros(256, dtype=bool)
    claimed[ignore] = True
    owner = {v: "ignore" for v in ignore}
    names: list[str] = []
    colors: list[tuple[int, int, int]] = []
    for train_id, entry in enumerate(data["classes"]):
        where = f"{path}: classes[{train_id}]"
        name, color, values = _class_entry(entry, where)
        if name in names:
            raise ClassTableError(f"{where}: the name {name!r} is used twice")
        for value in values:
            if value in owner:
                raise ClassTableError(f"{where} ({name}): label value {value} is already claimed by {owner[value]}")
            owner[value] = name
            lut[value] = train_id
            claimed[value] = True
        names.append(name)
        colors.append(color)
    return ClassTable(tuple(names), tuple(colors), lut, claimed)


def _class_entry(entry: Any, where: str) -> tuple[str, tuple[int, int, int], list[int]]:
    if not isinstance(entry, dict) or set(entry) != {"name", "color", "values"}:
        raise ClassTableError(f"{where}: expected exactly the keys name, color, values; got {entry!r}")
    name, color, values = entry["name"], entry["color"], entry["values"]
    if not isinstance(name, str) or not name.strip():
        raise ClassTableError(f"{where}: name must be a non-empty string, got {name!r}")
    if (not isinstance(color, list) or len(color) != 3
            or not all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in color)):
        raise ClassTableError(f"{where} ({name}): color must be three integers 0-255 (RGB), got {color!r}")
    values = _values(values if isinstance(values, list) else [values], f"{where} ({name}): values")
    if not values:
        raise ClassTableError(f"{where} ({name}): values must name at least one label value")
    return name, (color[0], color[1], color[2]), values


def _values(values: list, where: str) -> list[int]:
    bad = [v for v in values if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 255]
    if bad:
        raise ClassTableError(f"{where}: label values must be integers 0-255 (8-bit label PNGs), got {bad}")
    if len(set(values)) != len(values):
        raise ClassTableError(f"{where}: a label value is listed twice in {values}")
    return list(values)
