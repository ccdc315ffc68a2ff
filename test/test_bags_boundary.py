"""Boundary F-score: hand-built label maps whose boundaries are known."""

from __future__ import annotations

import numpy as np
import pytest

from bialign_ros.bags.boundary import BoundaryCounts, BoundaryEvaluator, label_boundaries, near


def split(width: int, at: int, height: int = 20, left: int = 0, right: int = 1) -> np.ndarray:
    labels = np.full((height, width), right, np.uint8)
    labels[:, :at] = left
    return labels


def test_label_boundaries_mark_both_sides_of_a_class_change():
    b = label_boundaries(split(10, 4, height=3))
    assert b[:, 3].all() and b[:, 4].all() and b.sum() == 6
    assert not label_boundaries(np.zeros((5, 5), np.uint8)).any()


def test_near_is_euclidean_within_the_tolerance():
    ref = np.zeros((11, 11), bool)
    ref[5, 5] = True
    within = near(ref, 3.0)
    assert within[5, 8] and within[7, 7] and not within[5, 9] and not within[8, 8]
    assert not near(np.zeros((4, 4), bool), 10).any()


# boundaries are two pixels wide: a shift of 2 puts one of the two predicted columns within 1 pixel
@pytest.mark.parametrize("shift, tolerance, expected",
                         [(0, 0, 1.0), (2, 2, 1.0), (2, 1, 0.5), (4, 1, 0.0), (3, 3, 1.0)])
def test_shifted_boundary_counts_only_within_tolerance(shift, tolerance, expected):
    ev = BoundaryEvaluator(tolerance_px=tolerance)
    ev.update(split(40, 20), split(40, 20 + shift))
    assert ev.labels.f_score == pytest.approx(expected)


def test_precision_and_recall_of_a_spurious_boundary():
    truth = split(60, 20)
    pred = split(60, 20)
    pred[:, 45:] = 2  # one right boundary and one invented boundary of the same length
    ev = BoundaryEvaluator(tolerance_px=2)
    ev.update(truth, pred)
    assert ev.labels.recall == 1.0
    assert ev.labels.precision == pytest.approx(0.5)
    assert ev.labels.f_score == pytest.approx(2 * 0.5 / 1.5)


def test_ignored_ground_truth_is_not_scored_but_its_border_is_a_boundary():
    truth = split(40, 20, left=0, right=255)  # class 0 facing an unlabelled area
    pred = split(40, 20, left=0, right=3)
    pred[:, 30] = 5  # clutter inside the unlabelled area must not count
    ev = BoundaryEvaluator(tolerance_px=1)
    ev.update(truth, pred)
    assert ev.labels.truth == 20 and ev.labels.predicted == 20  # only the class side of the border
    assert ev.labels.f_score == 1.0


def test_edge_map_thresholded_and_counts_summed_over_frames():
    truth = split(40, 20)
    edges = np.zeros(truth.shape, np.float32)
    edges[:, 19:21] = 0.9
    edges[:, 5] = 0.4  # below the threshold
    ev = BoundaryEvaluator(tolerance_px=1, edge_threshold=0.5)
    ev.update(truth, truth, edges)
    assert ev.edges.f_score == 1.0
    ev.update(truth, truth, np.zeros(truth.shape, np.float32))  # a frame with no edges found
    assert ev.edges.precision == 1.0 and ev.edges.recall == pytest.approx(0.5)
    summary = ev.summary()
    assert summary["edges"]["truth_pixels"] == 80 and summary["tolerance_px"] == 1.0


def test_conventions_without_boundaries_and_bad_arguments():
    empty = BoundaryCounts()
    assert (empty.precision, empty.recall, empty.f_score) == (1.0, 1.0, 1.0)
    none_found = BoundaryCounts(predicted=0, truth=10)
    assert none_found.f_score == 0.0
    with pytest.raises(ValueError, match="tolerance"):
        BoundaryEvaluator(tolerance_px=-1)
    with pytest.raises(ValueError, match="edge threshold"):
        BoundaryEvaluator(edge_threshold=1.0)
    with pytest.raises(ValueError, match="differ in shape"):
        BoundaryEvaluator().update(np.zeros((4, 4), np.uint8), np.zeros((4, 5), np.uint8))
