"""One result-to-outputs path: the outputs module itself, and the node, ``bialign_bag_eval``'s
``outputs.mcap`` and ``bialign_segment`` giving the same bytes for the same frame."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from bialign_ros.bags.evaluate import EvalOptions, evaluate_bag
from bialign_ros.bags.io import BagReader
from bialign_ros.bags.make_bag import make_bag
from bialign_ros.classes import CITYSCAPES_NAMES
from bialign_ros.cli import segment as segment_cli
from bialign_ros.codec import image_to_array
from bialign_ros.ground_outputs import segmenter_work
from bialign_ros.image_files import read_rgb, write_png
from bialign_ros.node_interface import OUTPUT_TOPICS
from bialign_ros.outputs import (
    ENCODINGS,
    IMAGE_OUTPUTS,
    OPTIONAL_OUTPUTS,
    OutputSettings,
    check_outputs,
    needs_confidence,
    needs_edges,
    render_outputs,
)
from bialign_ros.segmenter import SegmentationResult
from bialign_ros.synthetic import render_scene

H, W = 100, 148  # not multiples of 8 or 32: the outputs must still have the frame's size


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    return render_scene(seed=7, height=H, width=W).image


def test_every_output_has_a_topic_and_an_encoding():
    assert set(IMAGE_OUTPUTS) <= set(OUTPUT_TOPICS)
    assert IMAGE_OUTPUTS[0] == "labels" and set(OPTIONAL_OUTPUTS) == set(IMAGE_OUTPUTS) - {"labels"}
    assert ENCODINGS == {"labels": "mono8", "edges": "mono8", "color": "rgb8", "overlay": "rgb8",
                         "confidence": "mono8", "free_space": "mono8"}


def test_outputs_from_a_hand_made_result(segmenter):
    image = np.full((2, 3, 3), 100, np.uint8)
    labels = np.array([[0, 1, 255], [2, 0, 1]], np.uint8)
    edges = np.array([[0.0, 0.5, 1.0], [0.25, 0.002, 0.998]], np.float32)
    confidence = np.array([[0.9, 0.5, 0.2], [0.4999, 1.0, 0.75]], np.float32)
    result = SegmentationResult(labels=labels, edges=edges, confidence=confidence)
    settings = OutputSettings(overlay_alpha=0.25, free_space_classes=("road", "building"),
                              free_space_min_confidence=0.5)
    out = {o.name: o for o in render_outputs(segmenter, image, result, reversed(IMAGE_OUTPUTS), settings)}
    assert list(out) == list(IMAGE_OUTPUTS)  # publishing order, whatever was asked
    assert out["labels"].array is labels and out["labels"].topic == "segmentation/labels"
    np.testing.assert_array_equal(out["edges"].array, [[0, 128, 255], [64, 1, 254]])
    colors = np.asarray(segmenter.meta.class_colors, np.uint8)
    expected_color = np.zeros((2, 3, 3), np.uint8)
    for (y, x), label in np.ndenumerate(labels):
        if label != 255:
            expected_color[y, x] = colors[label]
    np.testing.assert_array_equal(out["color"].array, expected_color)
    blend = np.rint(0.75 * 100 + 0.25 * expected_color.astype(float)).astype(np.uint8)
    blend[0, 2] = 100  # unknown pixels show the plain image
    np.testing.assert_array_equal(out["overlay"].array, blend)
    np.testing.assert_array_equal(out["confidence"].array, [[230, 128, 51], [127, 255, 191]])
    # road = 0 and building = 2 are free space where confident enough; 1 (sidewalk) and 255 never
    np.testing.assert_array_equal(out["free_space"].array, [[255, 0, 0], [0, 255, 0]])
    assert {o.name: o.encoding for o in out.values()} == ENCODINGS


def test_unknown_outputs_are_refused_and_edges_are_asked_for_only_when_needed():
    with pytest.raises(ValueError, match="unknown output.*heatmap.*known: labels, edges"):
        check_outputs(["labels", "heatmap"])
    assert not needs_edges(["labels", "color", "overlay"]) and needs_edges(["labels", "edges"])
    assert not needs_confidence(["labels", "edges"]) and needs_confidence(["free_space"])
    with pytest.raises(ValueError, match="unknown class name.*'roads'"):
        OutputSettings(free_space_classes=("roads",)).for_model(CITYSCAPES_NAMES)
    result = SegmentationResult(labels=np.zeros((8, 8), np.uint8), edges=None)
    with pytest.raises(ValueError, match="without edges"):
        render_outputs(None, np.zeros((8, 8, 3), np.uint8), result, ["edges"])


def _segment_cli(weights: Path, frame: np.ndarray, tmp: Path) -> dict[str, np.ndarray]:
    (tmp / "frames").mkdir()
    write_png(tmp / "frames" / "f.png", frame)
    assert np.array_equal(read_rgb(tmp / "frames" / "f.png"), frame)
    # in fp32, as bialign_bag_eval scores a .pt file (auto is bf16 on CPUs with AMX)
    assert segment_cli.main(["--weights", str(weights), "--precision", "fp32", "--out-dir", str(tmp / "seg"),
                             "--color", str(tmp / "frames" / "f.png")]) == 0
    files = {name: tmp / "seg" / f"f_{name}.png" for name in IMAGE_OUTPUTS}
    return {name: read_rgb(path) if ENCODINGS[name] == "rgb8" else cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            for name, path in files.items()}


def _bag_eval(weights: Path, tmp: Path) -> dict[str, np.ndarray]:
    make_bag(tmp / "frames", tmp / "bag", progress=False)
    result = evaluate_bag(tmp / "bag", weights, tmp / "eval", EvalOptions(image_topic="/camera/image",
                                                                        progress=False, samples=0))
    with BagReader(result.files["outputs"]) as bag:
        by_topic = {m.topic: m.decode() for m in bag.messages()}
    assert set(by_topic) == {"/camera/image", *(f"/{OUTPUT_TOPICS[name]}" for name in IMAGE_OUTPUTS)}
    return {name: image_to_array(by_topic[f"/{OUTPUT_TOPICS[name]}"]) for name in IMAGE_OUTPUTS}


def _node(weights: Path, frame: np.ndarray) -> dict[str, np.ndarray]:
    pytest.importorskip("rclpy")
    from ros_harness import RosPeer, best_effort, next_domain_id, reliable, start_node
    from sensor_msgs.msg import Image

    from bialign_ros.codec import fill_image

    domain = next_domain_id()
    node = start_node(domain, "-p", f"weights:={weights}", "-p", "device:=cpu")
    peer = RosPeer(domain)
    try:
        subs = {name: peer.collect(Image, OUTPUT_TOPICS[name], best_effort()) for name in IMAGE_OUTPUTS}
        pub = peer.publisher(Image, "image", reliable())
        # auto QoS subscribes best effort until it sees the reliable publisher: wait for the switch
        assert node.wait_for_output("reliability=reliable", 120), node.output
        assert peer.wait_for_subscribers(pub), node.output
        for name in IMAGE_OUTPUTS:
            assert peer.wait_for_publishers(OUTPUT_TOPICS[name]), name
        msg = fill_image(Image(), frame, "rgb8")
        msg.header.stamp.sec, msg.header.frame_id = 42, "cam"
        pub.publish(msg)
        got = {name: sub.wait_for(lambda m: m.header.stamp.sec == 42, 60) for name, sub in subs.items()}
        assert all(m is not None for m in got.values()), (got, node.output[-3000:])
        assert all(m.encoding == ENCODINGS[name] for name, m in got.items())
        return {name: image_to_array(m) for name, m in got.items()}
    finally:
        peer.close()
        node.stop()


@pytest.mark.ros
@pytest.mark.slow
def test_node_bag_eval_and_segment_cli_give_byte_identical_outputs(untrained_weights, frame, tmp_path):
    from_cli = _segment_cli(untrained_weights, frame, tmp_path)
    from_bag = _bag_eval(untrained_weights, tmp_path)
    from_node = _node(untrained_weights, frame)
    assert len(np.unique(from_cli["labels"])) > 1, "a frame with one class would not show a mismatch"
    for name in IMAGE_OUTPUTS:
        shape = (H, W, 3) if ENCODINGS[name] == "rgb8" else (H, W)
        for source, arrays in (("bialign_bag_eval", from_bag), ("bialign_node", from_node)):
            assert arrays[name].shape == shape and arrays[name].dtype == np.uint8, (source, name)
            assert arrays[name].tobytes() == np.ascontiguousarray(from_cli[name]).tobytes(), (source, name)


def test_segmenter_work_asks_for_the_maps_the_outputs_read():
    assert segmenter_work(["labels"]) == {"edges": False, "confidence": False}
    assert segmenter_work(["labels", "edges", "color", "overlay"]) == {"edges": True, "confidence": False}
    assert segmenter_work(["free_space"]) == {"edges": False, "confidence": True}
    assert segmenter_work(["points"]) == segmenter_work(["grid"]) == {"edges": False, "confidence": True}
    with pytest.raises(ValueError, match="unknown output"):
        segmenter_work(["labels", "depth"])
