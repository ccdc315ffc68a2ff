"""Confusion matrix, IoU and accuracy of bialign_ros.metrics, by hand and against the official evaluator."""

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from bialign_ros.metrics import (
    ConfusionMatrix,
    confusion_matrix,
    mean_iou,
    per_class_iou,
    pixel_accuracy,
    summarize,
)

GT = np.array([[0, 1, 1], [1, 255, 2]])
PRED = np.array([[0, 1, 0], [1, 2, 0]])


def test_confusion_matrix_by_hand():
    m = confusion_matrix(GT, PRED, num_classes=4)
    expected = np.zeros((4, 4), dtype=np.int64)
    expected[0, 0] = 1  # gt 0 -> 0
    expected[1, 1] = 2  # gt 1 -> 1 twice
    expected[1, 0] = 1  # gt 1 -> 0
    expected[2, 0] = 1  # gt 2 -> 0; the ignored pixel predicted 2 is not counted
    np.testing.assert_array_equal(m, expected)
    assert m.dtype == np.int64


def test_iou_and_accuracy_by_hand():
    m = confusion_matrix(GT, PRED, num_classes=4)
    iou = per_class_iou(m)
    # class 0: tp 1, fp 2, fn 0; class 1: tp 2, fn 1; class 2: tp 0, fn 1; class 3 absent
    np.testing.assert_allclose(iou[:3], [1 / 3, 2 / 3, 0.0])
    assert np.isnan(iou[3])
    assert mean_iou(m) == pytest.approx((1 / 3 + 2 / 3 + 0) / 3)
    assert pixel_accuracy(m) == pytest.approx(3 / 5)


def test_class_only_predicted_counts_as_zero():
    m = confusion_matrix(np.array([0, 0]), np.array([0, 1]), num_classes=2)
    np.testing.assert_allclose(per_class_iou(m), [0.5, 0.0])
    assert mean_iou(m) == pytest.approx(0.25)


def test_empty_matrix_is_nan_and_summary_is_json():
    m = np.zeros((3, 3), dtype=np.int64)
    assert np.isnan(mean_iou(m)) and np.isnan(pixel_accuracy(m))
    s = summarize(confusion_matrix(GT, PRED, 4), ["a", "b", "c", "d"])
    assert s["per_class_iou"]["d"] is None
    assert s["num_pixels"] == 5
    assert json.loads(json.dumps(s, allow_nan=False)) == s


def test_running_matrix_accumulates():
    rng = np.random.default_rng(0)
    acc = ConfusionMatrix(5)
    total = np.zeros((5, 5), dtype=np.int64)
    for _ in range(3):
        gt, pred = rng.integers(0, 5, (2, 7, 9))
        acc.update(gt, pred)
        total += confusion_matrix(gt, pred, 5)
    np.testing.assert_array_equal(acc.matrix, total)
    assert acc.matrix.sum() == 3 * 63
    assert acc.miou() == pytest.approx(mean_iou(total))


@pytest.mark.parametrize(
    ("gt", "pred", "message"),
    [
        (np.zeros((2, 2)), np.zeros((2, 3)), "differ in shape"),
        (np.zeros((2, 2)), np.full((2, 2), 7), "prediction values \\[7\\]"),
        (np.full((2, 2), 9), np.zeros((2, 2)), "ground-truth label values \\[9\\]"),
    ],
)
def test_bad_inputs_are_named(gt, pred, message):
    with pytest.raises(ValueError, match=message):
        confusion_matrix(gt, pred, num_classes=4)


def test_summary_rejects_wrong_class_names():
    with pytest.raises(ValueError, match="2 class names for a 4-class"):
        summarize(np.zeros((4, 4)), ["a", "b"])


def test_metrics_import_no_torch():
    code = "import sys, bialign_ros.metrics; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_agrees_with_official_cityscapes_evaluator(tmp_path):
    ev = pytest.importorskip("cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling")
    from cityscapesscripts.helpers.labels import labels

    label_ids = [lab.id for lab in labels if lab.id >= 0]
    train_to_label = {lab.trainId: lab.id for lab in labels if 0 <= lab.trainId < 255}
    label_to_train = np.full(256, 255, dtype=np.uint8)
    for lab in labels:
        if lab.id >= 0 and 0 <= lab.trainId < 255:
            label_to_train[lab.id] = lab.trainId
    rng = np.random.default_rng(3)
    gts, preds = [], []
    ours = ConfusionMatrix(19)
    for i in range(3):
        # Blocky maps so that most classes have both hits and misses; void labels included.
        gt = np.repeat(np.repeat(rng.choice(label_ids, (6, 8)), 8, 0), 8, 1).astype(np.uint8)
        pred_train = np.where(rng.random(gt.shape) < 0.6, label_to_train[gt], rng.integers(0, 19, gt.shape))
        pred_train = np.where(pred_train == 255, rng.integers(0, 19, gt.shape), pred_train)
        pred = np.vectorize(train_to_label.get)(pred_train).astype(np.uint8)
        name = f"testcity_{i:06d}_000019"
        gts.append(str(tmp_path / f"{name}_gtFine_labelIds.png"))
        preds.append(str(tmp_path / f"{name}_pred.png"))
        cv2.imwrite(gts[-1], gt)
        cv2.imwrite(preds[-1], pred)
        ours.update(label_to_train[gt], pred_train)
    args = ev.CArgs()
    for key, value in vars(ev.args).items():
        setattr(args, key, value)
    args.evalInstLevelScore = False
    args.JSONOutput = False
    args.quiet = True
    result = ev.evaluateImgLists(preds, gts, args)
    ours_iou = per_class_iou(ours.matrix)
    for train_id, iou in enumerate(ours_iou):
        name = next(lab.name for lab in labels if lab.trainId == train_id)
        official = result["classScores"][name]
        assert (np.isnan(iou) and np.isnan(official)) or iou == pytest.approx(official, abs=1e-12), name
    assert ours.miou() == pytest.approx(result["averageScoreClasses"], abs=1e-12)
