"""Shared fixtures: untrained checkpoints (Cityscapes and five own classes), briefly trained ones, their
ONNX fp32 and int8 exports, and the ROS settings of multi-process tests."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from bialign_ros.transport import use_transport_profile

TRAINED_STEPS = 100


def pytest_configure(config: pytest.Config) -> None:
    """ROS processes of the tests (this one included) use the shipped transport profile and
    discover each other on this host only; both must be set before the first DDS participant."""
    use_transport_profile()
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")


@pytest.fixture(scope="session")
def untrained_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded untrained bialign_dfnet2 checkpoint (tens of ms per 96x160 frame on a CPU)."""
    from bialign_ros.weights import untrained_checkpoint

    return untrained_checkpoint(tmp_path_factory.mktemp("weights") / "untrained_dfnet2.pt", seed=0)


@pytest.fixture(scope="session")
def batch_norm_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """:func:`untrained_weights` whose batch norms are far from the identity (random running
    statistics, scales and shifts): what exports and backends that fold them are compared on."""
    from bialign_ros.weights import untrained_checkpoint

    return untrained_checkpoint(tmp_path_factory.mktemp("weights") / "batch_norm_dfnet2.pt", seed=0,
                                batch_norm_statistics=True)


@pytest.fixture(scope="session")
def trained_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bialign_dfnet2 trained for :data:`TRAINED_STEPS` steps on 16 synthetic 64 x 128 scenes (a minute
    on 2 cores): fp32's two best logits are at least 1 apart on a third to a half of the pixels of
    such scenes, so lower precisions can be held to the label agreement the docs state there."""
    from training_harness import train_briefly

    from bialign_ros.synthetic import write_cityscapes

    root = tmp_path_factory.mktemp("trained")
    write_cityscapes(root, split="train", num_images=16, height=64, width=128, seed=0, progress=False)
    return train_briefly(root, root / "run", steps=TRAINED_STEPS).out_dir / "final.pt"


@pytest.fixture(scope="session")
def five_class_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded untrained bialign_dfnet2 checkpoint of one's own five classes (road, sidewalk, vehicle,
    person, other) and colours: :data:`bialign_ros.synthetic.FIVE_CLASS_NAMES`."""
    import torch

    from bialign_ros.checkpoint import ModelMeta, save_checkpoint
    from bialign_ros.model import build_model
    from bialign_ros.synthetic import FIVE_CLASS_COLORS, FIVE_CLASS_NAMES

    torch.manual_seed(0)
    model = build_model("bialign_dfnet2", num_classes=len(FIVE_CLASS_NAMES), aux=False, edge=True)
    with torch.no_grad():  # confident labels, so the default free_space_min_confidence (0.5) leaves free space
        model.conv_out.conv_out.weight.mul_(20.0)
        model.conv_out.conv_out.bias.mul_(20.0)
    meta = ModelMeta(class_names=FIVE_CLASS_NAMES, class_colors=FIVE_CLASS_COLORS, training={"untrained": True})
    return save_checkpoint(tmp_path_factory.mktemp("weights") / "untrained_five_classes.pt", model.state_dict(), meta)


@pytest.fixture(scope="session")
def segmenter(untrained_weights: Path):
    """A CPU fp32 Segmenter of :func:`untrained_weights`: the reference the node's outputs are compared with."""
    from bialign_ros.segmenter import Segmenter

    seg = Segmenter.from_checkpoint(untrained_weights, device="cpu", precision="fp32")
    yield seg
    seg.close()


EXPORT_H, EXPORT_W = 64, 96
"""The size the ONNX exports are traced (and the int8 file calibrated) at; both keep it symbolic."""


@pytest.fixture(scope="session")
def onnx_file(batch_norm_weights: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dynamic-size fp32 ONNX export of :func:`batch_norm_weights` (minutes on a busy CPU: shared)."""
    from bialign_ros.backends.torch_runner import load_inference_model
    from bialign_ros.export import export_onnx

    model, meta = load_inference_model(batch_norm_weights)
    return export_onnx(model, meta, tmp_path_factory.mktemp("onnx") / "dynamic.onnx", EXPORT_H, EXPORT_W,
                       dynamic=True)


@pytest.fixture(scope="session")
def calib_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four synthetic calibration PNGs in two sub-folders; sorted by path, sub1/frame_3 comes last."""
    import cv2

    from bialign_ros.synthetic import render_scene

    root = tmp_path_factory.mktemp("calib")
    for i in range(4):
        sub = root / f"sub{i % 2}"
        sub.mkdir(exist_ok=True)
        cv2.imwrite(str(sub / f"frame_{i}.png"), render_scene(500 + i, EXPORT_H, EXPORT_W).image[:, :, ::-1])
    return root


@pytest.fixture(scope="session")
def int8_file(trained_weights: Path, calib_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dynamic-size int8 ONNX file of :func:`trained_weights` made by ``bialign_quantize`` on
    :func:`calib_dir`, the last frame held out."""
    out = tmp_path_factory.mktemp("int8") / "model.int8.onnx"
    cmd = [sys.executable, "-m", "bialign_ros.cli.quantize", "--weights", trained_weights, "--calib", calib_dir,
           "--out", out, "--height", EXPORT_H, "--width", EXPORT_W, "--held-out", 1]
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    assert "label agreement with fp32 on 1 held-out frame(s)" in proc.stdout
    return out


@pytest.fixture(scope="session")
def older_int8_file(int8_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """:func:`int8_file` recorded as files were before ``bialign_quantize`` kept the pyramid pooling in
    float (no ``pooling_in_float`` note): its runner warns below the calibration size."""
    import onnx

    from bialign_ros.backends.contract import set_onnx_metadata
    from bialign_ros.export import read_onnx_metadata

    meta, info = read_onnx_metadata(int8_file)
    proto = onnx.load_model(str(int8_file))
    notes = {k: v for k, v in info.notes.items() if k != "pooling_in_float"}
    set_onnx_metadata(proto, meta, replace(info, notes=notes))
    out = tmp_path_factory.mktemp("older_int8") / "older.int8.onnx"
    onnx.save_model(proto, str(out))
    return out


@pytest.fixture
def one_thread():
    """One intra-op thread: two OpenMP threads stall badly when another process takes a core."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def domain_id() -> int:
    """A ROS_DOMAIN_ID of its own for one test."""
    from ros_harness import next_domain_id

    return next_domain_id()
