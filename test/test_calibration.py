"""Expected calibration error and free-space IoU on cases computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from bialign_ros.calibration import ConfidenceCalibration, FreeSpaceIoU
from bialign_ros.classes import CITYSCAPES_NAMES, class_lookup


def test_ece_of_a_hand_made_frame():
    # Four pixels at confidence 0.95 (3 right), two at 0.35 (both wrong), one ignored.
    truth = np.array([[1, 1, 1, 1, 2, 2, 255]], np.uint8)
    labels = np.array([[1, 1, 1, 0, 0, 0, 4]], np.uint8)
    conf = np.array([[0.95, 0.95, 0.95, 0.95, 0.35, 0.35, 0.99]], np.float32)
    cal = ConfidenceCalibration(bins=10)
    cal.update(truth, labels, conf)
    # bin (0.9, 1.0]: accuracy 0.75, confidence 0.95; bin (0.3, 0.4]: accuracy 0, confidence 0.35
    assert cal.pixels == 6 and cal.count[9] == 4 and cal.count[3] == 2
    assert cal.expected_calibration_error() == pytest.approx(4 / 6 * 0.2 + 2 / 6 * 0.35)
    summary = cal.summary()
    assert summary["bins"] == 10 and summary["reliability"][9]["accuracy"] == pytest.approx(0.75)
    assert summary["reliability"][0]["accuracy"] is None  # empty bins have no accuracy


def test_a_calibrated_model_has_an_ece_near_zero_and_edges_go_to_the_lower_bin():
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.0, 1.0, (400, 400)).astype(np.float32)
    right = rng.uniform(0.0, 1.0, conf.shape) < conf  # right with probability = confidence
    truth = np.zeros(conf.shape, np.uint8)
    labels = np.where(right, 0, 1).astype(np.uint8)
    cal = ConfidenceCalibration()
    cal.update(truth, labels, conf)
    assert cal.bins == 15 and cal.expected_calibration_error() < 0.01
    edge = ConfidenceCalibration(bins=2)
    edge.update(np.zeros((1, 3), np.uint8), np.zeros((1, 3), np.uint8), np.array([[0.0, 0.5, 1.0]], np.float32))
    assert edge.count.tolist() == [2, 1]


def test_free_space_iou_by_hand():
    lut = class_lookup(["road"], CITYSCAPES_NAMES)
    truth = np.array([[0, 0, 1, 255]], np.uint8)  # road, road, sidewalk, ignored
    iou = FreeSpaceIoU(lut)
    iou.update(truth, np.array([[True, False, True, True]]))
    assert (iou.intersection, iou.union) == (1, 3) and iou.iou() == pytest.approx(1 / 3)
    assert np.isnan(FreeSpaceIoU(lut).iou())
