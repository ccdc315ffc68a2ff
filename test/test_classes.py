"""The built-in Cityscapes class table agrees with the official cityscapesscripts package."""

import numpy as np
import pytest

from bialign_ros.classes import CITYSCAPES_CLASSES, IGNORE_INDEX, NUM_CLASSES, train_id_to_label_id_lut

labels = pytest.importorskip("cityscapesscripts.helpers.labels", reason="cityscapesscripts not installed")


def test_table_matches_cityscapesscripts():
    official = {lab.trainId: lab for lab in labels.labels if 0 <= lab.trainId < 255}
    assert NUM_CLASSES == len(official) == 19
    for train_id, info in enumerate(CITYSCAPES_CLASSES):
        ref = official[train_id]
        assert (info.name, info.label_id, info.color) == (ref.name, ref.id, tuple(ref.color))


def test_train_to_label_lut():
    lut = train_id_to_label_id_lut()
    assert lut[IGNORE_INDEX] == 0
    assert [int(v) for v in lut[:NUM_CLASSES]] == [c.label_id for c in CITYSCAPES_CLASSES]
    assert lut.dtype == np.uint8
