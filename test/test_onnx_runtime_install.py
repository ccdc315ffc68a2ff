"""The ONNX-only install (requirements/runtime-onnx.txt): no torch, no onnx, the same labels.

This module runs in the full environment: it exports a checkpoint there and drives
``bialign_segment`` and ``bialign_node`` of a second venv that holds only the ONNX runtime
requirements and the ROS wheels. ``make test-onnx`` (mk/onnx.mk) builds that venv and names it in
``BIALIGN_ONNX_VENV``; without it those tests are skipped. The import-graph test needs no venv.
The node test is marked ``ros`` like the other multi-process tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("rclpy")

from ros_harness import ROOT, ChildProcess, RosPeer, reliable, ros_env  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from bialign_ros.backends.torch_runner import load_inference_model  # noqa: E402
from bialign_ros.cli.processes import python_module  # noqa: E402
from bialign_ros.codec import fill_image  # noqa: E402
from bialign_ros.export import export_onnx  # noqa: E402
from bialign_ros.segmenter import Segmenter  # noqa: E402
from bialign_ros.weights import untrained_checkpoint  # noqa: E402

ONNX_VENV = os.environ.get("BIALIGN_ONNX_VENV")
HEAVY = ("torch", "onnx", "onnxscript")
H, W = 96, 160
needs_venv = pytest.mark.skipif(not ONNX_VENV, reason="BIALIGN_ONNX_VENV is not set: `make test-onnx` builds the "
                                                      "venv without torch and onnx and runs this module with it")


def _venv_bin(name: str) -> str:
    path = Path(ONNX_VENV) / "bin" / name
    assert path.is_file(), f"{path} is missing: BIALIGN_ONNX_VENV must name a venv made by `make venv-onnx`"
    return str(path)


def _images(n: int, seed: int) -> list[np.ndarray]:
    """RGB frames of colour blocks: a structure the untrained network turns into many classes."""
    rng = np.random.default_rng(seed)
    return [np.repeat(np.repeat(rng.integers(0, 256, (H // 8, W // 8, 3), dtype=np.uint8), 8, 0), 8, 1)
            for _ in range(n)]


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory) -> Path:
    """A dynamic-size fp32 export of dfnet1 weights with random batch-norm statistics."""
    work = tmp_path_factory.mktemp("onnx_install")
    weights = untrained_checkpoint(work / "dfnet1.pt", arch="bialign_dfnet1", seed=1, batch_norm_statistics=True)
    model, meta = load_inference_model(weights)
    return export_onnx(model, meta, work / "dfnet1.onnx", 64, 96, dynamic=True)


def test_node_and_segment_cli_import_neither_torch_nor_onnx():
    modules = ("bialign_ros.node", "bialign_ros.cli.segment", "bialign_ros.backends.ort_runner",
               "bialign_ros.backends.tensorrt_runner")
    code = (f"import sys\nfor m in {modules!r}: __import__(m)\n"
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


@needs_venv
def test_light_venv_has_neither_torch_nor_onnx():
    code = f"import importlib.util\nprint([m for m in {HEAVY!r} if importlib.util.find_spec(m)])"
    proc = subprocess.run([_venv_bin("python"), "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


@needs_venv
def test_segment_cli_writes_the_labels_of_the_full_environment(onnx_file, tmp_path):
    paths = []
    for i, image in enumerate(_images(3, seed=0)):
        paths.append(tmp_path / f"frame{i}.png")
        cv2.imwrite(str(paths[-1]), image[:, :, ::-1])
    outputs = {}
    for env, cmd in (("full", python_module("bialign_ros.cli.segment")), ("light", [_venv_bin("bialign_segment")])):
        out = tmp_path / env
        proc = subprocess.run([*cmd, "--weights", str(onnx_file), "--out-dir", str(out), *map(str, paths)],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert "on cpu (fp32)" in proc.stdout
        outputs[env] = out
    for path in paths:
        name = f"{path.stem}_labels.png"
        full = (outputs["full"] / name).read_bytes()
        light = (outputs["light"] / name).read_bytes()
        assert full == light, name
    labels = cv2.imread(str(outputs["light"] / f"{paths[0].stem}_labels.png"), cv2.IMREAD_UNCHANGED)
    assert len(np.unique(labels)) > 3  # not a constant image that any broken run could match


@needs_venv
@pytest.mark.ros
@pytest.mark.slow
def test_node_publishes_the_labels_of_the_full_environment(onnx_file, domain_id):
    node = ChildProcess([_venv_bin("bialign_node"), "--ros-args", "-p", f"weights:={onnx_file}",
                         "-p", "drop_frames:=false"], ros_env(domain_id), cwd=ROOT)
    peer = RosPeer(domain_id)
    try:
        pub = peer.publisher(Image, "/image", reliable())
        labels = peer.collect(Image, "/segmentation/labels", reliable())
        assert node.wait_for_output("reliability=reliable", 60), node.output
        assert "backend onnxruntime" in node.output and " on cpu" in node.output, node.output
        assert peer.wait_for_publishers("/segmentation/labels"), node.output
        seg = Segmenter.from_checkpoint(onnx_file, device="cpu", warmup=False)
        for sec, image in enumerate(_images(2, seed=1), start=1):
            msg = fill_image(Image(), image, "rgb8")
            msg.header.stamp.sec = sec
            pub.publish(msg)
            got = labels.wait_for(lambda m, sec=sec: m.header.stamp.sec == sec, 30)
            assert got is not None, node.output
            np.testing.assert_array_equal(np.frombuffer(got.data, np.uint8).reshape(H, W),
                                          seg.segment(image, edges=False).labels)
    finally:
        peer.close()
        node.stop()
