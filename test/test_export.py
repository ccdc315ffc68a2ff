"""ONNX and TorchScript exports: same outputs as PyTorch, metadata inside, any size when dynamic.

Stated tolerances (fp32), against the PyTorch model itself (batch norms unfolded; the weights'
batch norms are far from the identity): ONNX Runtime labels equal PyTorch's on at least 99.9 % of
pixels and edge probabilities within 1e-4 (the logits outputs: test_backends.py).
"""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from test_backends import model_outputs

from bialign_ros.backends.torch_runner import load_inference_model
from bialign_ros.export import (
    GRAPH_KEY,
    META_KEY,
    ONNX_OPSET,
    ExportError,
    check_size,
    export_onnx,
    export_torchscript,
    read_onnx_metadata,
)
from bialign_ros.segmenter import Segmenter

LABEL_AGREEMENT = 0.999
EDGE_TOLERANCE = 1e-4
CPU = ["CPUExecutionProvider"]


@pytest.fixture(scope="module")
def model_and_meta(batch_norm_weights):
    return load_inference_model(batch_norm_weights)


def _images(n: int, h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


# 1/32 maps of 2x3, 3x5, 5x3 and 2x7 cells: none a multiple of every pyramid pooling bin count.
@pytest.mark.parametrize(("n", "h", "w"), [(1, 64, 96), (2, 96, 160), (1, 136, 72), (1, 48, 200)])
def test_dynamic_export_matches_torch_at_any_multiple_of_8(model_and_meta, onnx_file, n, h, w):
    model, meta = model_and_meta
    session = ort.InferenceSession(str(onnx_file), providers=CPU)
    images = _images(n, h, w, seed=h)
    labels, edges, conf, *_ = session.run(None, {"images": images})
    ref_labels, ref_edges, ref_conf = model_outputs(model, meta, images)
    assert labels.dtype == np.uint8 and labels.shape == edges.shape == conf.shape == (n, h, w)
    assert (labels == ref_labels).mean() >= LABEL_AGREEMENT
    np.testing.assert_allclose(edges, ref_edges, atol=EDGE_TOLERANCE)
    assert np.abs(conf - ref_conf).max() < 1 / 255  # the published maps are round(255 p)


def test_export_carries_metadata_and_opset(model_and_meta, onnx_file):
    _, meta = model_and_meta
    proto = onnx.load_model(str(onnx_file))
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= max(ONNX_OPSET, 17)
    assert [i.name for i in proto.graph.input] == ["images"]
    assert [o.name for o in proto.graph.output] == ["labels", "edges", "confidence", "logits", "edge_logits"]
    props = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(props[META_KEY])["class_names"] == list(meta.class_names)
    read_meta, info = read_onnx_metadata(onnx_file)
    assert read_meta == meta
    assert info.fixed_size is None and info.size_multiple == 8 and info.precision == "fp32"
    assert json.loads(props[GRAPH_KEY])["size_multiple"] == 8


def test_metadata_errors(tmp_path, onnx_file):
    with pytest.raises(ExportError, match="not found"):
        read_onnx_metadata(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"\x00junk")
    with pytest.raises(ExportError, match="cannot read ONNX file"):
        read_onnx_metadata(tmp_path / "junk.onnx")
    proto = onnx.load_model(str(onnx_file))
    for p in proto.metadata_props:
        if p.key == META_KEY:
            p.value = json.dumps({"class_names": ["a"], "colour": 1})
    onnx.save_model(proto, str(tmp_path / "bad.onnx"))
    with pytest.raises(ExportError, match="unreadable bialign_ros metadata"):
        read_onnx_metadata(tmp_path / "bad.onnx")


def test_export_size_checks():
    with pytest.raises(ValueError, match="multiple of 8"):
        check_size(100, 128, dynamic=True)
    with pytest.raises(ValueError, match="out of range"):
        check_size(8, 128, dynamic=True)
    with pytest.raises(ValueError, match="out of range"):
        check_size(4, 128)
    check_size(75, 131)


def test_cli_writes_a_checked_fixed_size_export(batch_norm_weights, model_and_meta, tmp_path):
    out = tmp_path / "fixed.onnx"
    proc = subprocess.run([sys.executable, "-m", "bialign_ros.cli.export", "--weights",
                           str(batch_norm_weights), "--out", str(out), "--height", "60", "--width", "100"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "agree with PyTorch on" in proc.stdout
    _, info = read_onnx_metadata(out)
    assert info.fixed_size == (60, 100)  # not a multiple of 8: the general head path
    model, meta = model_and_meta
    images = _images(1, 60, 100, seed=3)
    labels, edges, conf, *_ = ort.InferenceSession(str(out), providers=CPU).run(None, {"images": images})
    ref_labels, ref_edges, ref_conf = model_outputs(model, meta, images)
    assert (labels == ref_labels).mean() >= LABEL_AGREEMENT
    np.testing.assert_allclose(edges, ref_edges, atol=EDGE_TOLERANCE)
    assert np.abs(conf - ref_conf).max() < 1 / 255
    # Other image sizes are resized to the fixed input; the outputs come back as the resized logits
    # give them (the general head path's logits: classes x 60 x 100 planes).
    from test_upsample import check_reduced_scale

    seg = Segmenter.from_checkpoint(out, device="cpu", input_scale=0.5, warmup=False)
    assert seg.network_size(120, 200) == (60, 100)
    big = cv2.resize(images[0], (200, 120), interpolation=cv2.INTER_NEAREST)
    assert seg.segment(big).labels.shape == (120, 200)
    check_reduced_scale(seg, big)


def test_cli_errors(batch_norm_weights, tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "bialign_ros.cli.export", *map(str, args)],
                              capture_output=True, text=True, timeout=120)

    proc = run("--weights", tmp_path / "none.pt", "--out", tmp_path / "x.onnx")
    assert proc.returncode == 2 and "not found" in proc.stderr
    proc = run("--weights", batch_norm_weights, "--out", tmp_path / "x.ts", "--format", "torchscript",
               "--dynamic")
    assert proc.returncode == 2 and "ONNX exports only" in proc.stderr


def test_fp16_export_runs_with_half_the_weights(model_and_meta, tmp_path):
    model, meta = model_and_meta
    out = export_onnx(model, meta, tmp_path / "half.onnx", 64, 96, fp16=True)
    proto = onnx.load_model(str(out))
    conv_weights = [t for t in proto.graph.initializer if t.name.endswith("weight") and len(t.dims) == 4]
    assert conv_weights and all(t.data_type == onnx.TensorProto.FLOAT16 for t in conv_weights)
    assert read_onnx_metadata(out)[1].precision == "fp16"
    images = _images(1, 64, 96, seed=4)
    labels, edges, *_ = ort.InferenceSession(str(out), providers=CPU).run(None, {"images": images})
    ref_labels, ref_edges, _ = model_outputs(model, meta, images)
    assert edges.dtype == np.float16
    # Untrained logits have tiny margins, so fp16 flips more labels than trained weights would.
    assert (labels == ref_labels).mean() > 0.9
    assert np.abs(edges.astype(np.float32) - ref_edges).max() < 0.01


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_torchscript_export(model_and_meta, tmp_path):
    model, meta = model_and_meta
    out = export_torchscript(model, meta, tmp_path / "graph.ts", 64, 96)
    extra = {"meta.json": "", "graph.json": ""}
    scripted = torch.jit.load(str(out), _extra_files=extra)
    assert json.loads(extra["meta.json"])["class_names"] == list(meta.class_names)
    assert json.loads(extra["graph.json"])["height"] == 64
    images = _images(2, 64, 96, seed=5)
    with torch.no_grad():
        labels, edges, _ = scripted(torch.from_numpy(images))
    ref_labels, ref_edges, _ = model_outputs(model, meta, images)
    assert (labels.numpy() == ref_labels).mean() >= LABEL_AGREEMENT
    np.testing.assert_allclose(edges.numpy(), ref_edges, atol=EDGE_TOLERANCE)
