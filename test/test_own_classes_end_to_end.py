"""A user's own five classes, end to end: a data set in the own-classes layout -> a few fine-tuning
steps from a 19-class Cityscapes checkpoint -> training.evaluate, the node over DDS and the bag
evaluation, all of them in the five classes.

The data set is the synthetic scenes relabelled to road, sidewalk, vehicle, person, other and
written as a labelling tool would (label values 10-50, 0 unlabelled, ``classes.yaml``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from bialign_ros.checkpoint import load_checkpoint
from bialign_ros.synthetic import FIVE_CLASS_COLORS, FIVE_CLASS_NAMES, render_scene, write_own_classes
from bialign_ros.synthetic.own_classes_writer import UNLABELLED, label_value

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
H, W = 64, 128
STEPS = 4


@pytest.fixture(scope="module")
def fine_tuned(tmp_path_factory, untrained_weights) -> dict:
    """The data set and the run ``python -m training.train`` makes of it, as a user runs it."""
    base = tmp_path_factory.mktemp("own_classes")
    data = base / "my_robot"
    write_own_classes(data, "train", num_images=8, height=H, width=W, seed=0, progress=False)
    write_own_classes(data, "val", num_images=3, height=H, width=W, seed=0, progress=False)
    run = base / "run"
    cmd = [sys.executable, "-m", "training.train", "--config", "training/configs/own_classes_finetune.yaml",
           "--data-root", str(data), "--init-weights", str(untrained_weights), "--out-dir", str(run),
           "--device", "cpu", "--iterations", str(STEPS), "--no-progress",
           "--set", "data.crop_size=64", "--set", "data.class_uniform_tile=32", "--set", "data.workers=0",
           "--set", "optim.batch_size=2", "--set", "optim.batch_per_device=2", "--set", "loss.ohem_min_kept=500",
           "--set", "loss.edge_ohem_min_kept=100", "--set", f"val_every={STEPS}", "--set", "ckpt_every=0"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return {"data": data, "weights": run / "final.pt", "log": proc.stdout}


def test_fine_tuning_restarts_the_class_layers_and_writes_the_five_class_table(fine_tuned, untrained_weights):
    start_state, start_meta, _ = load_checkpoint(untrained_weights)
    assert start_meta.num_classes == 19
    fresh = sorted(k for k in start_state if k.startswith("conv_out.conv_out."))
    assert (f"its 19 classes are not the data's 5, so the class layers start afresh: {', '.join(fresh)}"
            in fine_tuned["log"])
    state, meta, _ = load_checkpoint(fine_tuned["weights"])
    assert meta.class_names == FIVE_CLASS_NAMES and meta.class_colors == FIVE_CLASS_COLORS
    assert meta.training["step"] == STEPS and meta.training["config"]["model"]["init_weights"] == str(untrained_weights)
    assert state["conv_out.conv_out.weight"].shape[0] == 5 * 64
    assert "val mIoU" in fine_tuned["log"]  # validation ran on the five-class val split


def test_evaluate_reports_the_five_classes_and_writes_label_values(fine_tuned, tmp_path):
    from training import evaluate

    out = tmp_path / "eval"
    assert evaluate.main(["--weights", str(fine_tuned["weights"]), "--data-root", str(fine_tuned["data"]),
                          "--split", "val", "--device", "cpu", "--no-progress", "--out-dir", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics["per_class_iou"]) == list(FIVE_CLASS_NAMES)
    assert np.array(metrics["confusion_matrix"]).shape == (5, 5) and metrics["num_images"] == 3
    preds = sorted((out / "pred").iterdir())
    assert [p.name for p in preds] == ["frame_00000.png", "frame_00001.png", "frame_00002.png"]
    values = set(np.unique(np.concatenate([cv2.imread(str(p), cv2.IMREAD_UNCHANGED).ravel() for p in preds])))
    assert values and values <= {label_value(i) for i in range(5)} and UNLABELLED not in values


def test_bag_evaluation_reports_the_five_classes_as_training_evaluate_does(fine_tuned, tmp_path):
    from bialign_ros.cli import bag_eval, make_bag
    from training import evaluate

    data = fine_tuned["data"]
    assert make_bag.main(["--images", str(data / "images/val"), "--labels", str(data / "labels/val"),
                          "--classes", str(data / "classes.yaml"), "--out", str(tmp_path / "bag"),
                          "--no-progress"]) == 0
    assert bag_eval.main(["--bag", str(tmp_path / "bag"), "--image-topic", "/camera/image",
                          "--gt-topic", "/camera/labels", "--weights", str(fine_tuned["weights"]),
                          "--out-dir", str(tmp_path / "bag_eval"), "--device", "cpu", "--no-progress"]) == 0
    metrics = json.loads((tmp_path / "bag_eval" / "metrics.json").read_text())
    assert list(metrics["per_class_iou"]) == list(FIVE_CLASS_NAMES)
    # The same frames through training.evaluate with the node's single view give the same confusion matrix.
    assert evaluate.main(["--weights", str(fine_tuned["weights"]), "--data-root", str(data), "--split", "val",
                          "--device", "cpu", "--no-flip", "--no-pred", "--no-progress",
                          "--out-dir", str(tmp_path / "eval")]) == 0
    reference = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["confusion_matrix"] == reference["confusion_matrix"]


@pytest.mark.ros
def test_the_node_publishes_five_class_labels_and_table(fine_tuned):
    pytest.importorskip("rclpy")
    from rcl_interfaces.srv import GetParameters
    from ros_harness import RosPeer, best_effort, next_domain_id, reliable, start_node
    from sensor_msgs.msg import Image

    from bialign_ros.codec import fill_image, image_to_array
    from bialign_ros.node_interface import CLASS_TABLE_PARAMS, OUTPUT_TOPICS
    from bialign_ros.node_params import color_to_hex

    domain = next_domain_id()
    node = start_node(domain, "-p", f"weights:={fine_tuned['weights']}")
    peer = RosPeer(domain)
    try:
        labels_sub = peer.collect(Image, OUTPUT_TOPICS["labels"], best_effort())
        colour_sub = peer.collect(Image, OUTPUT_TOPICS["color"], best_effort())
        image_pub = peer.publisher(Image, "image", reliable())
        # auto QoS subscribes best effort until it sees the reliable publisher: wait for the switch
        assert node.wait_for_output("reliability=reliable", 120), node.output
        assert peer.wait_for_subscribers(image_pub), node.output
        frame = render_scene(seed=11, height=H, width=W).image
        got = None
        for sec in range(1, 6):
            msg = fill_image(Image(), frame, "rgb8")
            msg.header.stamp.sec = sec
            image_pub.publish(msg)
            got = labels_sub.wait_for(lambda m, sec=sec: m.header.stamp.sec == sec, 15)
            if got is not None:
                break
        assert got is not None, node.output[-3000:]
        labels = image_to_array(got)
        assert labels.max() < 5
        colour = image_to_array(colour_sub.wait_for(lambda m, sec=sec: m.header.stamp.sec == sec, 10))
        np.testing.assert_array_equal(colour, np.asarray(FIVE_CLASS_COLORS, np.uint8)[labels])
        names = list(CLASS_TABLE_PARAMS)
        response = peer.call(GetParameters, "/bialign/get_parameters", GetParameters.Request(names=names))
        table = dict(zip(names, response.values))
        assert list(table["class_names"].string_array_value) == list(FIVE_CLASS_NAMES)
        assert list(table["class_colors"].string_array_value) == [color_to_hex(c) for c in FIVE_CLASS_COLORS]
        assert "free space: road; obstacles: vehicle, person, other" in node.output
    finally:
        peer.close()
        node.stop()
    assert "Traceback" not in node.output
