"""The drop-aware live scorer, fed by hand: what counts as delivered, dropped and held."""

from __future__ import annotations

import numpy as np
import pytest

from bialign_ros.bags.live_score import LiveScorer
from bialign_ros.classes import CITYSCAPES_NAMES
from bialign_ros.metrics import ConfusionMatrix, confusion_matrix, summarize

MS = 1_000_000
NUM = len(CITYSCAPES_NAMES)


def label_maps(count: int, seed: int = 0, shape: tuple[int, int] = (12, 16)) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 4, shape).astype(np.uint8) for _ in range(count)]


def test_scorer_with_every_frame_delivered_equals_the_plain_confusion_matrix():
    truths, preds = label_maps(5, 0), label_maps(5, 1)
    scorer = LiveScorer(CITYSCAPES_NAMES, 2 * MS)
    for i, (t, p) in enumerate(zip(truths, preds)):
        scorer.add_truth(i * 100 * MS, t, arrived=float(i))
        scorer.add_labels(i * 100 * MS + MS, p, arrived=i + 0.25)  # 1 ms stamp jitter, 250 ms later
    scorer.finish()
    result = scorer.summary()
    expected = sum(confusion_matrix(t, p, NUM) for t, p in zip(truths, preds))
    assert result["miou"] == summarize(expected, CITYSCAPES_NAMES)["miou"] == result["delivered"]["miou"]
    assert result["frames"]["matched"] == 5 and result["frames"]["dropped"] == 0
    assert result["frames"]["drop_ratio"] == 0.0
    assert result["label_delay"]["mean_ms"] == pytest.approx(250.0)
    assert result["matched_stamps"] == [i * 100 * MS for i in range(5)]


def test_dropped_frames_are_counted_and_scored_with_the_labels_held_before_them():
    truths, preds = label_maps(7, 2), label_maps(7, 3)
    scorer = LiveScorer(CITYSCAPES_NAMES, 0)
    stamp = [i * 100 * MS for i in range(7)]
    scorer.add_truth(stamp[0], truths[0], 0.0)  # dropped before any labels existed
    for i in (1, 2, 3, 4):
        scorer.add_truth(stamp[i], truths[i], float(i))
    scorer.add_labels(stamp[1], preds[1], 1.5)
    scorer.add_labels(stamp[4], preds[4], 4.5)  # 2 and 3 were dropped: labels 1 were held
    scorer.add_labels(stamp[5], preds[5], 5.1)  # labels before their ground truth
    scorer.add_truth(stamp[5], truths[5], 5.0)
    scorer.add_truth(stamp[6], truths[6], 6.0)  # never answered: dropped at the end, holds labels 5
    scorer.finish()
    result = scorer.summary()
    delivered, held = ConfusionMatrix(NUM), ConfusionMatrix(NUM)
    for i in (1, 4, 5):
        delivered.update(truths[i], preds[i])
        held.update(truths[i], preds[i])
    for i, kept in ((2, 1), (3, 1), (6, 5)):
        held.update(truths[i], preds[kept])
    np.testing.assert_array_equal(scorer.delivered.matrix, delivered.matrix)
    np.testing.assert_array_equal(scorer.held.matrix, held.matrix)
    assert result["frames"] == {"ground_truth": 7, "labels": 3, "matched": 3, "dropped": 4,
                                "dropped_before_first_labels": 1, "labels_without_ground_truth": 0,
                                "drop_ratio": 4 / 7}
    assert result["dropped_stamps"] == [stamp[i] for i in (0, 2, 3, 6)]
    assert result["miou"] == summarize(held.matrix, CITYSCAPES_NAMES)["miou"]
    # ground truth arriving after newer labels is dropped at once
    scorer.add_truth(stamp[3] + 1, truths[3], 7.0)
    assert len(scorer.dropped_stamps) == 5


def test_scorer_rejects_labels_of_another_size():
    scorer = LiveScorer(CITYSCAPES_NAMES, 0)
    scorer.add_truth(0, np.zeros((4, 4), np.uint8), 0.0)
    with pytest.raises(ValueError, match="ground truth is 4x4"):
        scorer.add_labels(0, np.zeros((4, 6), np.uint8), 0.1)
