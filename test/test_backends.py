"""The inference graph and the backends: same labels as the model, one interface, clear errors."""

from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F

import bialign_ros.backends.graph as graph_module
import bialign_ros.backends.torch_runner as torch_runner_module
from bialign_ros.backends.base import BackendUnavailable, backend_for_file, physical_cores
from bialign_ros.backends.graph import (
    InferenceGraph,
    ShuffleHead,
    TapSumConv,
    fold_batch_norms,
    space_to_depth_conv,
)
from bialign_ros.backends.ort_runner import OrtRunner, providers_for
from bialign_ros.backends.tensorrt_runner import TensorRTRunner, engine_sources
from bialign_ros.backends.torch_runner import TorchRunner, load_inference_model
from bialign_ros.checkpoint import ModelMeta
from bialign_ros.export import ExportError
from bialign_ros.model import build_model
from bialign_ros.segmenter import Segmenter
from bialign_ros.synthetic import render_scene
from bialign_ros.weights import randomize_batch_norm_statistics

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def model_and_meta(batch_norm_weights):
    return load_inference_model(batch_norm_weights)


def _images(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def model_outputs(model, meta: ModelMeta, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What the plain model gives for uint8 images, with the checkpoint's own normalisation: labels,
    edge probability and the largest softmax probability of the logits."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float()
    if meta.channel_order == "bgr":
        x = x.flip(1)
    x = (x / 255.0 - torch.tensor(meta.mean).view(1, 3, 1, 1)) / torch.tensor(meta.std).view(1, 3, 1, 1)
    with torch.no_grad():
        logits, edges = model(x)
    return logits.argmax(1).numpy(), edges[:, 0].numpy(), torch.softmax(logits, 1).amax(1).numpy()


@pytest.mark.parametrize("space_to_depth", [True, False])
@pytest.mark.parametrize("size", [(64, 96), (75, 131)])
def test_graph_equals_model(model_and_meta, space_to_depth, size):
    model, meta = model_and_meta
    images = _images(2, *size, seed=1)
    graph = InferenceGraph(model, meta, space_to_depth=space_to_depth).eval()
    with torch.no_grad():
        labels, edges, conf = graph(torch.from_numpy(images))
        assert graph(torch.from_numpy(images), confidence=False)[2] is None
    ref_labels, ref_edges, ref_conf = model_outputs(model, meta, images)
    assert labels.dtype == torch.uint8 and labels.shape == edges.shape == conf.shape == (2, *size)
    assert (labels.numpy() == ref_labels).mean() > 0.999
    np.testing.assert_allclose(edges.numpy(), ref_edges, atol=1e-5)
    assert conf.dtype == torch.float32
    np.testing.assert_allclose(conf.numpy(), ref_conf, atol=1e-5)


@pytest.mark.parametrize("space_to_depth", [True, False])
@pytest.mark.parametrize("size", [(64, 96), (75, 131)])
def test_network_input_under_autocast_is_the_float32_input_rounded_once(model_and_meta, space_to_depth, size):
    """The convolutions under autocast read the same bf16 values as when they round the float32 input
    themselves; so the graph's outputs are the same too."""
    model, meta = model_and_meta
    graph = InferenceGraph(model, meta, space_to_depth=space_to_depth).eval()
    images = torch.from_numpy(_images(1, *size, seed=4))
    with torch.no_grad():
        reference = graph.network_input(images)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            rounded = graph.network_input(images)
            labels, edges, _ = graph(images)
            convolved = graph.backbone.stage1(rounded)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            expected = graph.backbone.stage1(reference)
    assert reference.dtype == torch.float32 and rounded.dtype == torch.bfloat16
    assert torch.equal(rounded, reference.to(torch.bfloat16))
    assert torch.equal(convolved, expected)
    assert labels.shape == edges.shape == (1, *size)


def test_graph_folds_bgr_channel_order(model_and_meta):
    model, _ = model_and_meta
    meta = ModelMeta(channel_order="bgr", mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3))
    images = _images(1, 48, 80, seed=2)
    with torch.no_grad():
        labels, edges, _ = InferenceGraph(model, meta).eval()(torch.from_numpy(images))
    ref_labels, ref_edges, _ = model_outputs(model, meta, images)
    assert (labels.numpy() == ref_labels).mean() > 0.999
    np.testing.assert_allclose(edges.numpy(), ref_edges, atol=1e-5)


@pytest.mark.parametrize(("kernel", "size"), [(3, (10, 14)), (7, (10, 14)), (7, (9, 13)), (5, (6, 6))])
def test_space_to_depth_conv_is_exact(kernel, size):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 8, kernel, stride=2, padding=kernel // 2)
    x = torch.randn(2, 3, *size)
    h, w = size
    padded = F.pad(x, (0, w % 2, 0, h % 2))
    blocks = padded.permute(0, 2, 3, 1).reshape(2, (h + 1) // 2, 2, (w + 1) // 2, 2, 3)
    s2d_input = blocks.permute(0, 1, 3, 2, 4, 5).reshape(2, (h + 1) // 2, (w + 1) // 2, 12)
    s2d_input = s2d_input.permute(0, 3, 1, 2)
    torch.testing.assert_close(space_to_depth_conv(conv)(s2d_input), conv(x), atol=1e-5, rtol=1e-5)


def test_space_to_depth_conv_rejects_other_convolutions():
    with pytest.raises(ValueError, match="stride-2 odd square kernel"):
        space_to_depth_conv(torch.nn.Conv2d(3, 8, 3, stride=1, padding=1))
    with pytest.raises(ValueError, match="stride-2 odd square kernel"):
        space_to_depth_conv(torch.nn.Conv2d(3, 8, 4, stride=2, padding=1))


@pytest.mark.parametrize(("kernel", "bias"), [(3, False), (5, True)])
def test_tap_sum_conv_is_exact(kernel, bias):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(16, 2, kernel, padding=kernel // 2, bias=bias)
    x = torch.randn(2, 16, 7, 11)
    with torch.no_grad():
        torch.testing.assert_close(TapSumConv(conv)(x), conv(x), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="stride-1 odd square kernel"):
        TapSumConv(torch.nn.Conv2d(16, 2, 3, stride=2, padding=1))


@pytest.mark.parametrize("arch", ["bialign_dfnet1", "bialign_dfnet2"])
def test_fold_batch_norms_keeps_outputs(arch):
    torch.manual_seed(0)
    model = randomize_batch_norm_statistics(build_model(arch, aux=False).eval())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        before = model(x)[0]
        folded = fold_batch_norms(model)
        after = folded(x)[0]
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.backbone.modules())
    torch.testing.assert_close(after, before, atol=1e-4, rtol=1e-4)


def test_argmax_before_shuffle_equals_argmax_after():
    torch.manual_seed(0)
    model = build_model("bialign_dfnet1", num_classes=5, aux=False).eval()
    head = ShuffleHead(model.conv_out, 5, "labels").eval()
    x = torch.randn(2, 256, 6, 9)
    with torch.no_grad():
        fast, conf, _ = head(x, (48, 72), confidence=True)  # the head's own size: argmax before the shuffle
        logits = model.conv_out(x)
    assert torch.equal(fast.long(), logits.argmax(1))
    torch.testing.assert_close(conf, torch.softmax(logits, 1).amax(1))
    with pytest.raises(ValueError, match="labels' or 'edges"):
        ShuffleHead(model.conv_out, 5, "logits")


@pytest.mark.parametrize("blocks", [False, True])
@pytest.mark.parametrize("bf16", [False, True])
def test_class_planes_give_the_exported_heads_labels_ties_included(bf16, blocks, monkeypatch):
    if blocks:  # 7 classes x 64 sub-pixels x 4 bytes: 25 of the 108 pixels a block in fp32, 50 in bf16
        monkeypatch.setattr(graph_module, "PLANE_BLOCK_BYTES", 25 * 7 * 64 * 4)
    torch.manual_seed(1)
    model = build_model("bialign_dfnet1", num_classes=7, aux=False).eval()
    out, ff = model.conv_out.conv_out, model.conv_out.up.upscale_factor ** 2
    with torch.no_grad():  # classes 2 and 5 the same and often winning: the first of the two must win
        out.bias[2 * ff:3 * ff] += 1.5
        out.weight[5 * ff:6 * ff], out.bias[5 * ff:6 * ff] = out.weight[2 * ff:3 * ff], out.bias[2 * ff:3 * ff]
    head = ShuffleHead(model.conv_out, 7, "labels").eval()
    x = torch.randn(2, 256, 6, 9).contiguous(memory_format=torch.channels_last)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        planes, conf, raw = head(x, (48, 72), confidence=True)  # eager PyTorch: the class planes
        exported, exported_conf, logits = head(x, (48, 72), confidence=True, logits=True)  # the ONNX graph's way
    assert raw is None and logits is not None
    assert (exported == 2).float().mean() > 0.2 and not (exported == 5).any()
    assert torch.equal(planes, exported)
    assert conf.dtype == exported_conf.dtype == torch.float32
    torch.testing.assert_close(conf, exported_conf, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_plane_comparison_is_the_float_comparison_zeros_of_both_signs_included(dtype):
    torch.manual_seed(2)
    planes = torch.randn(19, 500).to(dtype)
    planes[3] = planes[7]  # ties
    assert torch.equal(graph_module._equal(planes, planes.amax(0)), planes == planes.amax(0))
    zeros = torch.tensor([[-0.0, 2.0, -1.0], [0.0, 2.0, -3.0], [-5.0, 1.0, -1.0]], dtype=dtype)
    best = zeros.amax(0)
    assert torch.equal(graph_module._equal(zeros, best), zeros == best)
    assert graph_module._equal(zeros, best)[:2, 0].all()  # -0 and +0 are both the maximum


def test_backend_follows_the_file():
    assert backend_for_file("w.onnx") == "onnxruntime"
    assert backend_for_file("w.engine") == backend_for_file("w.plan") == "tensorrt"
    assert backend_for_file("w.pt") == "torch"
    assert backend_for_file("w.onnx", "tensorrt") == "tensorrt"
    with pytest.raises(ValueError, match="bialign_export --weights W.pt"):
        backend_for_file("w.pt", "onnxruntime")
    with pytest.raises(ValueError, match="torch backend runs bialign_ros checkpoints"):
        backend_for_file("w.onnx", "torch")
    with pytest.raises(ValueError, match="auto, torch, onnxruntime, tensorrt"):
        backend_for_file("w.pt", "openvino")


def test_torch_runner_batches(model_and_meta):
    model, meta = model_and_meta
    runner = TorchRunner(model, meta, CPU)
    images = _images(2, 48, 64, seed=3)
    labels, edges, conf, logits, edge_logits = runner.run(images)
    assert labels.shape == edges.shape == (2, 48, 64) and conf is logits is edge_logits is None
    assert labels.dtype == np.uint8 and edges.dtype == np.float32
    single = runner.run(images[1:], confidence=True)
    assert (single.labels[0] == labels[1]).mean() > 0.999
    assert single.confidence.shape == (1, 48, 64) and single.confidence.dtype == np.float32
    assert (single.confidence > 1 / 19 - 1e-6).all() and (single.confidence <= 1 + 1e-6).all()
    with pytest.raises(ValueError, match="uint8 N x H x W x 3"):
        runner.run(images[0])
    with pytest.raises(ValueError, match="needs a CUDA device"):
        TorchRunner(model, meta, CPU, precision="fp16")


def test_bf16_runner_rounds_its_weights_once_and_computes_what_autocast_computes(model_and_meta, monkeypatch):
    """The bf16 runner stores the convolutions' and matrix products' weights in bf16; its outputs are
    those of the float32 weights that autocast rounds at every frame."""
    model, meta = model_and_meta
    rounded = TorchRunner(model, meta, CPU, precision="bf16")
    monkeypatch.setattr(torch_runner_module, "round_weights_for_autocast", lambda graph, dtype: None)
    per_frame = TorchRunner(model, meta, CPU, precision="bf16")
    layers = [m for m in rounded.graph.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert layers and all(m.weight.dtype == torch.bfloat16 for m in layers)
    assert all(p.dtype == torch.float32 for p in per_frame.graph.parameters())
    assert rounded.graph.mean.dtype == torch.float32  # the input is normalised in float32 all the same
    images = _images(2, 64, 96, seed=6)
    for expected, got in zip(per_frame.run(images, confidence=True), rounded.run(images, confidence=True)):
        if expected is not None:
            np.testing.assert_array_equal(got, expected)


def test_onnxruntime_segmenter_agrees_with_torch(batch_norm_weights, onnx_file):
    torch_seg = Segmenter.from_checkpoint(batch_norm_weights, device="cpu", precision="fp32", warmup=False)
    ort_seg = Segmenter.from_checkpoint(onnx_file, device="cpu", warmup=False)
    assert ort_seg.backend == "onnxruntime" and ort_seg.precision == "fp32" and ort_seg.model is None
    assert ort_seg.meta == torch_seg.meta
    image = _images(1, 80, 112, seed=4)[0]
    a, b = torch_seg.segment(image), ort_seg.segment(image)
    assert (a.labels == b.labels).mean() > 0.999
    np.testing.assert_allclose(a.edges, b.edges, atol=1e-4)
    with pytest.raises(ValueError, match="torch backend only"):
        ort_seg.forward(ort_seg.preprocess(image))


def test_dynamic_export_takes_multiples_of_eight(onnx_file):
    seg = Segmenter.from_checkpoint(onnx_file, device="cpu", warmup=False)
    assert seg.runner.fixed_size is None and seg.runner.size_multiple == 8
    assert seg.network_size(75, 131) == (72, 128)
    assert seg.network_size(8, 8) == (16, 16)
    res = seg.segment(_images(1, 75, 131, seed=5)[0])
    assert res.labels.shape == res.edges.shape == (75, 131)


def test_segment_batch_equals_single_images(onnx_file):
    seg = Segmenter.from_checkpoint(onnx_file, device="cpu", warmup=False)
    images = list(_images(3, 64, 96, seed=6))
    batch = seg.segment_batch(images)
    for image, res in zip(images, batch):
        one = seg.segment(image)
        assert np.array_equal(one.labels, res.labels)
        np.testing.assert_allclose(one.edges, res.edges, atol=1e-6)
    assert seg.segment_batch([]) == []
    with pytest.raises(ValueError, match="one size"):
        seg.segment_batch([images[0], images[1][:32]])


def test_labels_and_edges_run_on_the_graph_cut_down_to_them(onnx_file):
    """ONNX Runtime runs every node whatever is fetched: without confidence or logits asked for, the
    runner uses the graph cut down to labels and edges, with the same results."""
    runner = OrtRunner(onnx_file)
    lean = runner.lean_session()
    assert [o.name for o in lean.get_outputs()] == ["labels", "edges"]
    assert len(runner.session.get_outputs()) == 5 and runner.lean_session() is lean
    images = _images(2, 64, 96, seed=8)
    cut = runner.run(images)
    whole = runner.run(images, confidence=True)
    assert np.array_equal(cut.labels, whole.labels) and np.array_equal(cut.edges, whole.edges)
    assert cut.confidence is None and whole.confidence is not None


def test_exported_file_precision_must_match(onnx_file):
    with pytest.raises(ValueError, match="holds a fp32 model"):
        Segmenter.from_checkpoint(onnx_file, device="cpu", precision="int8", warmup=False)


def test_onnx_without_metadata_is_refused(onnx_file, tmp_path):
    proto = onnx.load_model(str(onnx_file))
    del proto.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save_model(proto, str(bare))
    with pytest.raises(ExportError, match="no bialign_ros metadata"):
        OrtRunner(bare)
    with pytest.raises(ExportError, match="not found"):
        OrtRunner(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ExportError, match="cannot load"):
        OrtRunner(tmp_path / "junk.onnx")


def test_engine_reads_metadata_beside_it(tmp_path):
    assert engine_sources(tmp_path / "m.onnx") == (tmp_path / "m.engine", tmp_path / "m.onnx")
    (tmp_path / "m.onnx").write_bytes(b"")
    assert engine_sources(tmp_path / "m.plan") == (tmp_path / "m.plan", tmp_path / "m.onnx")
    with pytest.raises(ValueError, match="keep the ONNX file"):
        engine_sources(tmp_path / "other.engine")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the errors raised on a machine without a GPU")
def test_gpu_backends_say_why_they_cannot_run(onnx_file):
    with pytest.raises(BackendUnavailable, match="(tensorrt Python package|CUDA GPU)"):
        TensorRTRunner(onnx_file)
    with pytest.raises(BackendUnavailable, match="no CUDA or TensorRT execution provider"):
        providers_for("cuda:0")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_onnxruntime_agrees_with_cpu(onnx_file):
    image = _images(1, 64, 96, seed=7)[0]
    cpu = Segmenter.from_checkpoint(onnx_file, device="cpu", warmup=False).segment(image)
    gpu = Segmenter.from_checkpoint(onnx_file, device="cuda", warmup=False).segment(image)
    assert (cpu.labels == gpu.labels).mean() > 0.999


def test_physical_cores():
    assert 1 <= physical_cores() <= os.cpu_count()


def test_onnxruntime_workers_do_not_spin():
    """Spinning workers would hold the cores the node's transport threads need between parallel sections."""
    from bialign_ros.backends.ort_runner import session_options

    so = session_options(2)
    assert so.intra_op_num_threads == 2
    assert so.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_onnxruntime_outputs_at_reduced_scale_are_the_resized_logits(batch_norm_weights, onnx_file):
    from test_upsample import backend_logits, check_reduced_scale

    image = render_scene(31, 96, 160).image
    seg = Segmenter.from_checkpoint(onnx_file, device="cpu", input_scale=0.5, warmup=False)
    check_reduced_scale(seg, image)
    torch_seg = Segmenter.from_checkpoint(batch_norm_weights, device="cpu", precision="fp32", input_scale=0.5,
                                         warmup=False)
    assert np.abs(backend_logits(seg, image)[0] - backend_logits(torch_seg, image)[0]).max() < 1e-3
