"""One's own class table through every runtime path that is not the node: a five-class checkpoint.

The checkpoint (fixture ``five_class_weights``) names road, sidewalk, vehicle, person and other with
colours of its own; its labels, colours, exports, quantised file, bag evaluation and the ground
classes must follow that table, never the 19 Cityscapes classes. The weights are untrained: only
the table matters here. The node over DDS is tested in test_node_own_classes.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from bialign_ros.classes import (
    CITYSCAPES_COLORS,
    CITYSCAPES_NAMES,
    DEFAULT_FREE_SPACE_CLASSES,
    DEFAULT_OBSTACLE_CLASSES,
    free_space_classes_for,
    no_free_space_note,
    obstacle_classes_for,
)
from bialign_ros.outputs import OutputSettings
from bialign_ros.synthetic import FIVE_CLASS_COLORS, FIVE_CLASS_NAMES, render_scene, to_five_classes

H, W = 64, 128


def test_five_class_relabelling_of_cityscapes_train_ids():
    groups = {"road": "road", "sidewalk": "sidewalk", "person": "person", "rider": "person",
              **dict.fromkeys(("car", "truck", "bus", "train", "motorcycle", "bicycle"), "vehicle")}
    ids = np.array([*range(len(CITYSCAPES_NAMES)), 255, 19, 200], np.uint8)
    got = to_five_classes(ids)
    assert [FIVE_CLASS_NAMES[v] for v in got[:19]] == [groups.get(name, "other") for name in CITYSCAPES_NAMES]
    assert got[19:].tolist() == [255, 255, 255]
    scene = render_scene(3, H, W)
    five = to_five_classes(scene.train_ids)
    assert five.shape == (H, W) and set(np.unique(five)) >= {0, 2, 4}  # road, a vehicle and the rest
    assert not set(FIVE_CLASS_COLORS) & set(CITYSCAPES_COLORS)
    with pytest.raises(ValueError, match="uint8"):
        to_five_classes(ids.astype(np.int32))


def test_default_ground_classes_fit_any_class_table():
    assert free_space_classes_for(CITYSCAPES_NAMES) == ("road",)
    assert obstacle_classes_for(CITYSCAPES_NAMES, ("road",)) == DEFAULT_OBSTACLE_CLASSES
    assert "building" not in obstacle_classes_for(CITYSCAPES_NAMES, ("road", "building"))
    assert free_space_classes_for(FIVE_CLASS_NAMES) == ("road",)
    assert obstacle_classes_for(FIVE_CLASS_NAMES, ("road",)) == ("vehicle", "person", "other")
    assert no_free_space_note(DEFAULT_FREE_SPACE_CLASSES, FIVE_CLASS_NAMES) is None
    indoor = ("floor", "wall", "robot")
    assert free_space_classes_for(indoor) == () and OutputSettings().for_model(indoor).free_space_classes == ()
    assert "none of the default free-space classes ['road']" in no_free_space_note(DEFAULT_FREE_SPACE_CLASSES, indoor)
    assert obstacle_classes_for(indoor, ()) == indoor
    # names given explicitly must be the model's
    assert free_space_classes_for(indoor, ("floor",)) == ("floor",)
    assert obstacle_classes_for(indoor, ("floor",)) == ("wall", "robot")
    with pytest.raises(ValueError, match=r"unknown class name\(s\) \['road'\]; the model's classes are: floor"):
        free_space_classes_for(indoor, ("road", "floor"))
    with pytest.raises(ValueError, match=r"\['car'\].*road, sidewalk, vehicle, person, other"):
        obstacle_classes_for(FIVE_CLASS_NAMES, ("road",), ("car", "person"))
