"""Scalar logging of a run (scalars.jsonl) and the figures drawn from it."""

import cv2
import numpy as np

from training.plots import plot_confusion_matrix, plot_per_class_iou, plot_training_curves
from training.scalars import ScalarWriter, read_scalars


def test_scalars_are_appended_and_plotted(tmp_path):
    writer = ScalarWriter(tmp_path, tensorboard=False)
    assert not writer.has_tensorboard
    for step in (1, 2, 3):
        writer.add(step, {"loss/main": 3.0 / step, "lr": 0.01 * (1 - step / 4)})
    writer.add(3, {"val/miou": 0.25})
    writer.add(2, {"loss/main": 1.4, "lr": 0.005})  # a resumed run repeats steps after its checkpoint
    writer.close()
    records = read_scalars(tmp_path / "scalars.jsonl")
    assert records[0] == {"step": 1, "loss/main": 3.0, "lr": 0.0075}
    assert len(records) == 5 and records[3] == {"step": 3, "val/miou": 0.25}
    image = cv2.imread(str(plot_training_curves(tmp_path / "scalars.jsonl", tmp_path / "curves.png")))
    assert image is not None and image.shape[0] > 3 * 200  # three panels: loss, lr, mIoU


def test_iou_and_confusion_figures(tmp_path):
    iou = {"road": 0.9, "sky": None, "car": 0.5}
    bars = cv2.imread(str(plot_per_class_iou(iou, tmp_path / "iou.png")))
    matrix = np.array([[5, 1, 0], [0, 0, 0], [2, 0, 7]])
    conf = cv2.imread(str(plot_confusion_matrix(matrix, list(iou), tmp_path / "sub" / "conf.png")))
    assert bars is not None and conf is not None
    assert bars.std() > 10 and conf.std() > 10  # something was drawn
