"""bialign_dfnet2 trained briefly on synthetic scenes on the CPU segments held-out scenes far above chance,
and the runtime's Segmenter loads the checkpoint as it is."""

import json

import numpy as np
import pytest
from training_harness import train_briefly

from bialign_ros.metrics import ConfusionMatrix, mean_iou, pixel_accuracy
from training import evaluate
from training.data import EvalSet, find_samples

HEIGHT, WIDTH = 64, 128


def _majority_baseline(root) -> tuple[float, float]:
    """mIoU and pixel accuracy of predicting the most frequent class everywhere."""
    labels = [item["labels"].numpy() for item in EvalSet(find_samples(root, "val"))]
    counts = np.bincount(np.concatenate([lab.ravel() for lab in labels]), minlength=256)[:19]
    cm = ConfusionMatrix(19)
    for lab in labels:
        cm.update(lab, np.full_like(lab, counts.argmax()))
    return mean_iou(cm.matrix), pixel_accuracy(cm.matrix)


def train_and_evaluate(root, tmp_path, steps: int) -> tuple:
    """:func:`train_briefly`, then ``training.evaluate`` on the set's val split; returns the result
    and the metrics."""
    result = train_briefly(root, tmp_path / "run", steps)
    out = tmp_path / "eval"
    assert evaluate.main(["--weights", str(result.out_dir / "final.pt"), "--data-root", str(root),
                          "--device", "cpu", "--no-pred", "--no-progress", "--out-dir", str(out)]) == 0
    return result, json.loads((out / "metrics.json").read_text())


@pytest.mark.slow
@pytest.mark.long
def test_training_learns_synthetic_scenes(tmp_path, one_thread):
    from bialign_ros.segmenter import Segmenter
    from bialign_ros.synthetic import render_scene, write_cityscapes

    root = tmp_path / "data"
    write_cityscapes(root, split="train", num_images=32, height=HEIGHT, width=WIDTH, seed=0, progress=False)
    write_cityscapes(root, split="val", num_images=8, height=HEIGHT, width=WIDTH, seed=500, progress=False)
    result, metrics = train_and_evaluate(root, tmp_path, steps=300)
    base_miou, base_acc = _majority_baseline(root)
    print(f"held-out synthetic mIoU {metrics['miou']:.3f} (majority-class baseline {base_miou:.3f}), "
          f"pixel accuracy {metrics['pixel_accuracy']:.3f} (baseline {base_acc:.3f})")
    # 300 steps from scratch reach about 0.16 mIoU, 0.65 pixel accuracy (road 0.73, sky 0.71).
    assert metrics["miou"] > max(0.12, 5 * base_miou)
    assert metrics["pixel_accuracy"] > base_acc + 0.25
    iou = metrics["per_class_iou"]
    assert iou["road"] > 0.5 and iou["sky"] > 0.4 and iou["building"] > 0.25

    # The node's inference engine loads the training checkpoint directly (auxiliary heads dropped).
    seg = Segmenter.from_checkpoint(result.out_dir / "final.pt", device="cpu", warmup=False)
    frame = render_scene(seed=777, height=HEIGHT, width=WIDTH)
    labels = seg.segment(frame.image).labels
    valid = frame.train_ids != 255
    assert (labels[valid] == frame.train_ids[valid]).mean() > base_acc + 0.2
