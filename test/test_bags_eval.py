"""Offline bag evaluation end to end, on bags made from synthetic Cityscapes folders.

Untrained seeded weights: only consistency matters (the same frames through the same model must
give the same numbers whichever way they travel).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bialign_ros.bags.boundary import BoundaryEvaluator
from bialign_ros.bags.evaluate import OUTPUT_TOPICS, EvalOptions, evaluate_bag
from bialign_ros.bags.io import BagReader, BagWriter
from bialign_ros.bags.make_bag import DEFAULT_START_NS, find_frames, frame_stamp, make_bag, read_frame
from bialign_ros.bags.messages import (
    CAMERA_INFO,
    COMPRESSED_IMAGE,
    IMAGE,
    compressed_message,
    image_message,
    message_labels,
    stamp_to_ns,
    typestore,
)
from bialign_ros.calibration import ConfidenceCalibration, FreeSpaceIoU
from bialign_ros.classes import class_lookup
from bialign_ros.cli import bag_eval
from bialign_ros.codec import message_to_rgb8
from bialign_ros.metrics import confusion_matrix, summarize
from bialign_ros.outputs import OutputSettings
from bialign_ros.synthetic import write_cityscapes

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
H, W, N = 64, 128, 6
RATE = 17.0


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cityscapes")
    write_cityscapes(root, "val", N, H, W, seed=5, progress=False)
    return root


@pytest.fixture(scope="module")
def direct(dataset, segmenter) -> dict:
    """The frames of the folder straight through the model and the metric code, without any bag."""
    num = segmenter.meta.num_classes
    matrix = np.zeros((num, num), np.int64)
    boundary = BoundaryEvaluator()
    calibration = ConfidenceCalibration()
    free_space = FreeSpaceIoU(class_lookup(["road"], segmenter.meta.class_names))
    labels, edges = [], []
    for frame in find_frames(dataset / "leftImg8bit/val", dataset / "gtFine/val"):
        rgb, truth = read_frame(frame)
        result = segmenter.segment(rgb, confidence=True)
        matrix += confusion_matrix(truth, result.labels, num)
        boundary.update(truth, result.labels, result.edges)
        calibration.update(truth, result.labels, result.confidence)
        free_space.update(truth, OutputSettings().free_space(result, segmenter.meta.class_names))
        labels.append(result.labels)
        edges.append(result.edges_u8())
    return {"matrix": matrix, "boundary": boundary.summary(), "labels": labels, "edges": edges,
            "calibration": calibration.summary(), "free_space_iou": free_space.iou()}


@pytest.fixture(scope="module", params=["sqlite3", "mcap"])
def evaluated(request, dataset, untrained_weights, tmp_path_factory) -> tuple[Path, Path, dict]:
    tmp = tmp_path_factory.mktemp(f"eval_{request.param}")
    bag = tmp / "bag"
    make_bag(dataset / "leftImg8bit/val", bag, dataset / "gtFine/val", progress=False, storage=request.param)
    out = tmp / "out"
    options = EvalOptions("/camera/image", "/camera/labels", device="cpu", progress=False)
    result = evaluate_bag(bag, untrained_weights, out, options)
    return bag, out, result.metrics


def test_offline_metrics_equal_a_direct_computation(evaluated, direct, segmenter):
    _, out, metrics = evaluated
    assert json.loads((out / "metrics.json").read_text()) == metrics
    np.testing.assert_array_equal(np.array(metrics["confusion_matrix"]), direct["matrix"])
    expected = summarize(direct["matrix"], segmenter.meta.class_names)
    assert metrics["miou"] == expected["miou"] and metrics["per_class_iou"] == expected["per_class_iou"]
    assert metrics["confidence_calibration"] == direct["calibration"]
    assert metrics["confidence_calibration"]["bins"] == 15 and 0 < metrics["confidence_calibration"]["ece"] < 1
    assert metrics["free_space"]["classes"] == ["road"] and metrics["free_space"]["min_confidence"] == 0.5
    expected_iou = direct["free_space_iou"]
    assert metrics["free_space"]["iou"] == (None if np.isnan(expected_iou) else expected_iou)
    assert (out / "reliability_diagram.png").is_file()
    assert metrics["boundary"] == direct["boundary"]
    assert metrics["frames"] == {"processed": N, "with_ground_truth": N, "without_ground_truth": 0,
                                 "ground_truth_without_frame": 0, "undecodable": 0}
    assert metrics["latency"]["n"] == N and metrics["latency"]["p99_ms"] >= metrics["latency"]["p50_ms"] > 0
    assert metrics["complete"] is True and metrics["bag_error"] is None


def test_output_bag_reads_back_with_expected_topics_counts_and_stamps(evaluated, direct):
    bag, out, _ = evaluated
    stamps = [frame_stamp(i, RATE) for i in range(N)]
    with BagReader(bag) as source:
        inputs = [m.data for m in source.messages(["/camera/image"])]
    with BagReader(out / "outputs.mcap") as result:
        assert result.damage is None
        assert {t: (i.msgtype, i.count) for t, i in result.topics.items()} == {
            t: (IMAGE, N) for t in ["/camera/image", *OUTPUT_TOPICS.values()]}
        by_topic: dict[str, list] = {}
        for m in result.messages():
            by_topic.setdefault(m.topic, []).append(m)
    for topic, messages in by_topic.items():
        assert [m.log_time for m in messages] == stamps, topic
        assert [stamp_to_ns(m.decode().header.stamp) for m in messages] == stamps, topic
    assert [m.data for m in by_topic["/camera/image"]] == inputs
    for i, (labels, edges, overlay) in enumerate(zip(*(by_topic[OUTPUT_TOPICS[k]]
                                                       for k in ("labels", "edges", "overlay")))):
        np.testing.assert_array_equal(message_labels(labels.decode()), direct["labels"][i])
        np.testing.assert_array_equal(message_labels(edges.decode()), direct["edges"][i])
        assert message_to_rgb8(overlay.decode()).shape == (H, W, 3)


@pytest.mark.parametrize("evaluated", ["mcap"], indirect=True)
def test_same_miou_as_training_evaluate_on_the_folder(evaluated, dataset, untrained_weights, tmp_path):
    _, _, metrics = evaluated
    proc = subprocess.run([sys.executable, "-m", "training.evaluate", "--weights", str(untrained_weights),
                           "--data-root", str(dataset), "--split", "val", "--out-dir", str(tmp_path),
                           "--device", "cpu", "--no-pred", "--no-flip"],  # the node sees each frame once
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    reference = json.loads((tmp_path / "metrics.json").read_text())
    assert reference["num_images"] == N
    assert metrics["miou"] == pytest.approx(reference["miou"], abs=1e-12)
    assert metrics["per_class_iou"] == pytest.approx(reference["per_class_iou"], abs=1e-12)
    assert metrics["confusion_matrix"] == reference["confusion_matrix"]


def _robust_bag(dataset: Path, path: Path) -> dict:
    """Several topics and types, JPEG frames, frames without ground truth, ground truth without frames,
    jittered and early-logged ground truth."""
    types = typestore().types
    frames = [read_frame(f) for f in find_frames(dataset / "leftImg8bit/val", dataset / "gtFine/val")]
    ms = 1_000_000
    expected = {"frames": [], "pairs": []}
    with BagWriter(path, "mcap") as bag:
        for topic, msgtype in (("/cam/image/compressed", COMPRESSED_IMAGE), ("/cam/labels", IMAGE),
                               ("/cam/camera_info", CAMERA_INFO), ("/note", "std_msgs/msg/String")):
            bag.add_topic(topic, msgtype)
        for i, (rgb, truth) in enumerate(frames):
            stamp = frame_stamp(i, RATE)
            frame = compressed_message(rgb, "jpeg", stamp, "cam")
            gt_stamp = stamp + (ms // 2 if i == 3 else 0)
            if i not in (2, 5):
                gt = image_message(truth, "mono8", gt_stamp, "cam")
                if i % 2:  # logged before its frame
                    bag.write("/cam/labels", stamp - 3 * ms, gt)
                    bag.write("/cam/image/compressed", stamp, frame)
                else:
                    bag.write("/cam/image/compressed", stamp, frame)
                    bag.write("/cam/labels", stamp + 5 * ms, gt)
                expected["pairs"].append((frame, truth))
            else:
                bag.write("/cam/image/compressed", stamp, frame)
            expected["frames"].append(frame)
            info = types[CAMERA_INFO](header=frame.header, height=H, width=W, distortion_model="plumb_bob",
                                      d=np.zeros(5), k=np.eye(3).ravel(), r=np.eye(3).ravel(), p=np.zeros(12),
                                      binning_x=0, binning_y=0,
                                      roi=types["sensor_msgs/msg/RegionOfInterest"](
                                          x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))
            bag.write("/cam/camera_info", stamp + ms, info)
            bag.write("/note", stamp + 2 * ms, types["std_msgs/msg/String"](data=f"frame {i}"))
        between = (frame_stamp(2, RATE) + frame_stamp(3, RATE)) // 2
        bag.write("/cam/labels", between, image_message(frames[0][1], "mono8", between, "cam"))
        after_end = image_message(frames[0][1], "mono8", frame_stamp(N, RATE), "cam")
        bag.write("/cam/labels", frame_stamp(N, RATE), after_end)
    return expected


def test_robust_to_mixed_topics_compressed_frames_and_unmatched_stamps(dataset, untrained_weights, segmenter,
                                                                        tmp_path):
    expected = _robust_bag(dataset, tmp_path / "bag")
    options = EvalOptions("/cam/image/compressed", "/cam/labels", device="cpu", stamp_tolerance_ms=1.0,
                          progress=False)
    metrics = evaluate_bag(tmp_path / "bag", untrained_weights, tmp_path / "out", options).metrics
    assert metrics["frames"] == {"processed": N, "with_ground_truth": N - 2, "without_ground_truth": 2,
                                 "ground_truth_without_frame": 2, "undecodable": 0}
    num = segmenter.meta.num_classes
    matrix = sum(confusion_matrix(truth, segmenter.segment(message_to_rgb8(frame)).labels, num)
                 for frame, truth in expected["pairs"])
    np.testing.assert_array_equal(np.array(metrics["confusion_matrix"]), matrix)
    with BagReader(tmp_path / "out/outputs.mcap") as out:
        assert out.topics["/cam/image/compressed"].msgtype == COMPRESSED_IMAGE
        assert {t: i.count for t, i in out.topics.items()} == {"/cam/image/compressed": N,
                                                                **dict.fromkeys(OUTPUT_TOPICS.values(), N)}


# SQLite places the rows' pages anywhere in the file (the last frames' data is not necessarily at
# the end), so less of a truncated database stays readable than of an MCAP file, written in order.
@pytest.mark.parametrize("storage, kept", [("sqlite3", 0.9), ("mcap", 0.6)])
def test_truncated_bag_is_evaluated_as_far_as_it_reads_and_the_error_names_the_file(
        dataset, untrained_weights, tmp_path, storage, kept, capsys):
    bag = tmp_path / "bag"
    make_bag(dataset / "leftImg8bit/val", bag, dataset / "gtFine/val", progress=False, storage=storage)
    data = next(p for p in bag.iterdir() if p.suffix in (".db3", ".mcap"))
    with data.open("r+b") as f:
        f.truncate(int(data.stat().st_size * kept))
    with BagReader(bag) as reader:
        readable = sum(1 for _ in reader.messages(["/camera/image"]))
    assert 0 < readable < N
    out = tmp_path / "out"
    code = bag_eval.main(["--bag", str(bag), "--image-topic", "/camera/image", "--gt-topic", "/camera/labels",
                          "--weights", str(untrained_weights), "--out-dir", str(out), "--device", "cpu",
                          "--no-progress"])
    err = capsys.readouterr().err
    assert code == 3, err
    assert str(data) in err and f"the {readable} readable frames were evaluated" in err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["complete"] is False and str(data) in metrics["bag_error"]
    assert metrics["frames"]["processed"] == readable
    assert metrics["frames"]["with_ground_truth"] >= readable - 1
    assert (out / "report.html").is_file() and (out / "outputs.mcap").is_file()


def test_missing_topic_and_wrong_type_fail_before_any_work(dataset, untrained_weights, tmp_path, capsys):
    expected = _robust_bag(dataset, tmp_path / "bag")
    assert expected["frames"]
    base = ["--bag", str(tmp_path / "bag"), "--weights", str(untrained_weights),
            "--out-dir", str(tmp_path / "out")]
    assert bag_eval.main([*base, "--image-topic", "/camera/image"]) == 2
    err = capsys.readouterr().err
    assert "topic '/camera/image' is not in bag" in err
    # ground truth: N - 2 frames' worth, one between frames and one after the last frame
    for listed in (f"/cam/image/compressed [sensor_msgs/msg/CompressedImage, {N} msgs]",
                   f"/cam/labels [sensor_msgs/msg/Image, {N} msgs]",
                   f"/note [std_msgs/msg/String, {N} msgs]"):
        assert listed in err
    assert bag_eval.main([*base, "--image-topic", "/cam/camera_info"]) == 2
    assert "has type sensor_msgs/msg/CameraInfo; expected sensor_msgs/msg/Image or" in capsys.readouterr().err
    assert bag_eval.main([*base, "--image-topic", "/cam/image/compressed", "--gt-topic", "/gt"]) == 2
    assert "topic '/gt' is not in bag" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("evaluated", ["sqlite3"], indirect=True)
def test_without_ground_truth_only_outputs_and_latency(evaluated, untrained_weights, tmp_path, capsys):
    bag, _, _ = evaluated
    code = bag_eval.main(["--bag", str(bag), "--image-topic", "/camera/image",
                          "--weights", str(untrained_weights), "--out-dir", str(tmp_path), "--device", "cpu",
                          "--max-frames", "3", "--samples", "2"])
    assert code == 0
    captured = capsys.readouterr()
    assert "3 frames evaluated; latency mean" in captured.out
    assert re.search(r"evaluating: 100%.* 3/3 .*(frame/s|s/frame)", captured.err)  # progress bar and rate
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert "miou" not in metrics and "boundary" not in metrics
    assert metrics["frames"]["processed"] == 3 and metrics["latency"]["n"] == 3
    with BagReader(tmp_path / "outputs.mcap") as out:
        assert {i.count for i in out.topics.values()} == {3}
        assert [m.log_time for m in out.messages(["/segmentation/labels"])] == \
            [DEFAULT_START_NS + round(i * 1e9 / RATE) for i in range(3)]
    html = (tmp_path / "report.html").read_text()
    assert "No ground truth" in html and not (tmp_path / "per_class_iou.png").exists()
