"""One's own class table through every runtime path that is not the node: a five-class checkpoint.

The checkpoint (fixture ``five_class_weights``) names road, sidewalk, vehicle, person and other with
colours of its own; its labels, colours, exports, quantised file, bag evaluation and the ground
classes must follow that table, never the 19 Cityscapes classes. The weights are untrained: only
the table matters here. The node over DDS is tested in test_node_own_classes.py.
"""

from __future__ import annotations

import re

import cv2
import numpy as np
import pytest

from bialign_ros.backends.torch_runner import load_inference_model
from bialign_ros.bags.evaluate import EvalOptions, evaluate_bag
from bialign_ros.bags.make_bag import make_bag
from bialign_ros.classes import (
    CITYSCAPES_COLORS,
    CITYSCAPES_NAMES,
    DEFAULT_FREE_SPACE_CLASSES,
    DEFAULT_OBSTACLE_CLASSES,
    free_space_classes_for,
    no_free_space_note,
    obstacle_classes_for,
)
from bialign_ros.cli import segment as segment_cli
from bialign_ros.export import export_onnx, read_onnx_metadata
from bialign_ros.image_files import read_rgb, write_png
from bialign_ros.metrics import confusion_matrix
from bialign_ros.outputs import OutputSettings
from bialign_ros.quantize import quantize_model
from bialign_ros.segmenter import Segmenter
from bialign_ros.synthetic import FIVE_CLASS_COLORS, FIVE_CLASS_NAMES, render_scene, to_five_classes

H, W = 64, 128
PALETTE = np.asarray(FIVE_CLASS_COLORS, np.uint8)


@pytest.fixture(scope="module")
def frames() -> list:
    return [render_scene(seed, H, W) for seed in (3, 4, 5)]


@pytest.fixture(scope="module")
def five_seg(five_class_weights):
    seg = Segmenter.from_checkpoint(five_class_weights, device="cpu", precision="fp32")
    yield seg
    seg.close()


def test_five_class_relabelling_of_cityscapes_train_ids():
    groups = {"road": "road", "sidewalk": "sidewalk", "person": "person", "rider": "person",
              **dict.fromkeys(("car", "truck", "bus", "train", "motorcycle", "bicycle"), "vehicle")}
    ids = np.array([*range(len(CITYSCAPES_NAMES)), 255, 19, 200], np.uint8)
    got = to_five_classes(ids)
    assert [FIVE_CLASS_NAMES[v] for v in got[:19]] == [groups.get(name, "other") for name in CITYSCAPES_NAMES]
    assert got[19:].tolist() == [255, 255, 255]
    scene = render_scene(3, H, W)
    five = to_five_classes(scene.train_ids)
    assert five.shape == (H, W) and set(np.unique(five)) >= {0, 2, 4}  # road, a vehicle and the rest
    assert not set(FIVE_CLASS_COLORS) & set(CITYSCAPES_COLORS)
    with pytest.raises(ValueError, match="uint8"):
        to_five_classes(ids.astype(np.int32))


def test_default_ground_classes_fit_any_class_table():
    assert free_space_classes_for(CITYSCAPES_NAMES) == ("road",)
    assert obstacle_classes_for(CITYSCAPES_NAMES, ("road",)) == DEFAULT_OBSTACLE_CLASSES
    assert "building" not in obstacle_classes_for(CITYSCAPES_NAMES, ("road", "building"))
    assert free_space_classes_for(FIVE_CLASS_NAMES) == ("road",)
    assert obstacle_classes_for(FIVE_CLASS_NAMES, ("road",)) == ("vehicle", "person", "other")
    assert no_free_space_note(DEFAULT_FREE_SPACE_CLASSES, FIVE_CLASS_NAMES) is None
    indoor = ("floor", "wall", "robot")
    assert free_space_classes_for(indoor) == () and OutputSettings().for_model(indoor).free_space_classes == ()
    assert "none of the default free-space classes ['road']" in no_free_space_note(DEFAULT_FREE_SPACE_CLASSES, indoor)
    assert obstacle_classes_for(indoor, ()) == indoor
    # names given explicitly must be the model's
    assert free_space_classes_for(indoor, ("floor",)) == ("floor",)
    assert obstacle_classes_for(indoor, ("floor",)) == ("wall", "robot")
    with pytest.raises(ValueError, match=r"unknown class name\(s\) \['road'\]; the model's classes are: floor"):
        free_space_classes_for(indoor, ("road", "floor"))
    with pytest.raises(ValueError, match=r"\['car'\].*road, sidewalk, vehicle, person, other"):
        obstacle_classes_for(FIVE_CLASS_NAMES, ("road",), ("car", "person"))


def test_torch_segmenter_gives_labels_and_colours_of_the_table(five_seg, frames):
    assert five_seg.meta.class_names == FIVE_CLASS_NAMES and five_seg.meta.class_colors == FIVE_CLASS_COLORS
    for frame in frames:
        result = five_seg.segment(frame.image, confidence=True)
        assert result.labels.max() < 5 and len(np.unique(result.labels)) > 1
        np.testing.assert_array_equal(five_seg.colorize(result.labels), PALETTE[result.labels])
        free = OutputSettings().for_model(FIVE_CLASS_NAMES).free_space(result, FIVE_CLASS_NAMES)
        np.testing.assert_array_equal(free, (result.labels == 0) & (result.confidence >= 0.5))
        assert free.any()


def test_segment_cli_writes_labels_and_colours_of_the_table(five_class_weights, five_seg, frames, tmp_path):
    write_png(tmp_path / "f.png", frames[0].image)
    assert segment_cli.main(["--weights", str(five_class_weights), "--precision", "fp32",
                             "--out-dir", str(tmp_path / "out"),
                             "--color", str(tmp_path / "f.png")]) == 0
    labels = cv2.imread(str(tmp_path / "out/f_labels.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(labels, five_seg.segment(frames[0].image).labels)
    np.testing.assert_array_equal(read_rgb(tmp_path / "out/f_color.png"), PALETTE[labels])
    free = cv2.imread(str(tmp_path / "out/f_free_space.png"), cv2.IMREAD_UNCHANGED)
    assert free.any() and not free[labels != 0].any()  # road only


def _onnx_runtime_follows_the_table(path, precision: str, frame) -> np.ndarray:
    """The labels of ``frame`` from the ONNX Runtime Segmenter of ``path``, after checking its class table."""
    seg = Segmenter.from_checkpoint(path, device="cpu")
    try:
        assert seg.backend == "onnxruntime" and seg.precision == precision
        assert seg.meta.class_names == FIVE_CLASS_NAMES and seg.meta.class_colors == FIVE_CLASS_COLORS
        labels = seg.segment(frame.image).labels
        assert labels.max() < 5 and len(np.unique(labels)) > 1
        np.testing.assert_array_equal(seg.colorize(labels), PALETTE[labels])
        return labels
    finally:
        seg.close()


@pytest.mark.slow
def test_onnx_export_carries_the_table_and_onnx_runtime_reads_it_back(five_class_weights, five_seg, frames,
                                                                     tmp_path):
    model, meta = load_inference_model(five_class_weights)
    path = export_onnx(model, meta, tmp_path / "five.onnx", H, W)
    file_meta, info = read_onnx_metadata(path)
    assert file_meta == meta and info.precision == "fp32"
    labels = _onnx_runtime_follows_the_table(path, "fp32", frames[2])
    assert (labels == five_seg.segment(frames[2].image).labels).mean() >= 0.999


@pytest.mark.slow
def test_int8_quantisation_carries_the_table_and_onnx_runtime_reads_it_back(five_class_weights, frames,
                                                                           tmp_path):
    model, meta = load_inference_model(five_class_weights)
    path = quantize_model(model, meta, tmp_path / "five.int8.onnx", [f.image for f in frames[:2]], dynamic=False).out
    file_meta, info = read_onnx_metadata(path)
    assert file_meta == meta and info.precision == "int8"
    _onnx_runtime_follows_the_table(path, "int8", frames[2])


@pytest.mark.slow
def test_bag_eval_on_own_class_ground_truth_reports_exactly_the_five_classes(five_class_weights, five_seg,
                                                                            frames, tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    for i, frame in enumerate(frames):  # a plain folder of frames and train-ID label images of the table
        write_png(tmp_path / f"images/frame_{i}.png", frame.image)
        write_png(tmp_path / f"labels/frame_{i}.png", to_five_classes(frame.train_ids))
    make_bag(tmp_path / "images", tmp_path / "bag", tmp_path / "labels", progress=False)
    options = EvalOptions("/camera/image", "/camera/labels", device="cpu", progress=False)
    result = evaluate_bag(tmp_path / "bag", five_class_weights, tmp_path / "eval", options)
    metrics = result.metrics
    assert list(metrics["per_class_iou"]) == list(FIVE_CLASS_NAMES)
    expected = sum(confusion_matrix(to_five_classes(f.train_ids), five_seg.segment(f.image).labels, 5)
                   for f in frames)
    np.testing.assert_array_equal(np.array(metrics["confusion_matrix"]), expected)
    assert metrics["free_space"]["classes"] == ["road"] and metrics["notes"] == []
    page = result.files["report"].read_text()
    table = page[page.index("<h2>Per-class IoU</h2>"):page.index("<h2>Confusion matrix</h2>")]
    assert re.findall(r"<tr><th>([^<]+)</th>", table) == list(FIVE_CLASS_NAMES)
    assert "free-space IoU (road)" in page
