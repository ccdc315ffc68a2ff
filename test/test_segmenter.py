"""The Segmenter: outputs at the input's resolution, equal to the model's own, clear errors."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest
import torch

from bialign_ros.checkpoint import CheckpointError, ModelMeta, save_checkpoint
from bialign_ros.classes import IMAGENET_MEAN, IMAGENET_STD
from bialign_ros.model import build_model
from bialign_ros.segmenter import Segmenter, resolve_device, resolve_precision
from bialign_ros.weights import untrained_checkpoint


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return untrained_checkpoint(tmp_path_factory.mktemp("w") / "untrained.pt", seed=3)


@pytest.fixture(scope="module")
def seg(weights):
    return Segmenter.from_checkpoint(weights, device="cpu", precision="fp32", warmup=False)


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("size", [(75, 131), (64, 64), (120, 200)])
def test_outputs_at_input_resolution(seg, size):
    res = seg.segment(_image(*size))
    assert res.labels.shape == size and res.labels.dtype == np.uint8
    assert res.labels.max() < 19
    assert res.edges.shape == size and res.edges.dtype == np.float32
    assert 0.0 <= res.edges.min() and res.edges.max() <= 1.0
    assert np.array_equal(res.edges_u8(), np.rint(res.edges * 255).astype(np.uint8))


def test_labels_equal_model_output(seg, weights):
    image = _image(96, 160, seed=1)
    model = build_model("bialign_dfnet2", aux=False).eval()
    state = torch.load(weights, weights_only=True)["state_dict"]
    model.load_state_dict(state)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    x = (torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0 - mean) / std
    with torch.no_grad():
        logits, edge = model(x)
    res = seg.segment(image)
    agree = (res.labels == logits.argmax(1)[0].numpy()).mean()
    assert agree > 0.999
    assert np.allclose(res.edges, edge[0, 0].numpy(), atol=1e-4)


def test_without_edges(seg):
    res = seg.segment(_image(64, 96), edges=False)
    assert res.edges is None
    with pytest.raises(ValueError, match="without edges"):
        res.edges_u8()


def test_input_scale_keeps_output_size(weights):
    seg = Segmenter.from_checkpoint(weights, device="cpu", input_scale=0.5, warmup=False)
    res = seg.segment(_image(101, 203))
    assert res.labels.shape == (101, 203) and res.edges.shape == (101, 203)
    assert seg.preprocess(_image(100, 200)).shape == (1, 3, 50, 100)


@pytest.fixture(scope="module")
def trained_reference(trained_weights):
    """Synthetic frames of the trained weights' size, fp32's outputs on them, and where fp32 is
    confident (two best logits at least 1 apart)."""
    from bialign_ros.bench.measure import confident_pixels
    from bialign_ros.synthetic import render_scene

    frames = np.stack([render_scene(1000 + i, 64, 128).image for i in range(4)])
    fp32 = Segmenter.from_checkpoint(trained_weights, device="cpu", precision="fp32", warmup=False)
    return frames, fp32.runner.run(frames, confidence=True), confident_pixels(fp32, frames)


def test_bf16_labels_agree_with_fp32(trained_weights, trained_reference):
    """The README's figures for CPU bf16: every label (>= 99.9 %) where fp32 is confident, >= 98 % of all."""
    frames, fp32, confident = trained_reference
    seg = Segmenter.from_checkpoint(trained_weights, device="cpu", precision="bf16", warmup=False)
    assert seg.precision == "bf16"
    out = seg.runner.run(frames, confidence=True)
    same = out.labels == fp32.labels
    assert confident.mean() > 0.3 and same[confident].mean() >= 0.999 and same.mean() >= 0.98, (
        confident.mean(), same[confident].mean(), same.mean())
    assert np.abs(out.confidence - fp32.confidence).max() > 1e-3  # it did compute in bf16


@pytest.mark.slow
@pytest.mark.long
def test_compiled_labels_equal_eager_fp32(trained_weights, trained_reference):
    """The README's figure for ``torch.compile`` (inductor, frozen weights): the labels of eager fp32,
    confident or not (>= 99.9 %), and its confidence within float rounding."""
    frames, fp32, _ = trained_reference
    seg = Segmenter.from_checkpoint(trained_weights, device="cpu", precision="fp32", compile=True, warmup=False)
    assert seg.runner.compiled
    out = seg.runner.run(frames, confidence=True)
    assert (out.labels == fp32.labels).mean() >= 0.999
    assert np.abs(out.confidence - fp32.confidence).max() < 1e-3


def test_bgr_channel_order_is_honoured(tmp_path):
    torch.manual_seed(0)
    model = build_model("bialign_dfnet2", aux=False)
    rgb = save_checkpoint(tmp_path / "rgb.pt", model.state_dict(), ModelMeta())
    bgr = save_checkpoint(tmp_path / "bgr.pt", model.state_dict(), ModelMeta(channel_order="bgr"))
    image = _image(64, 96, seed=5)
    a = Segmenter.from_checkpoint(rgb, device="cpu", warmup=False).segment(image)
    b = Segmenter.from_checkpoint(bgr, device="cpu", warmup=False).segment(image[:, :, ::-1].copy())
    assert np.array_equal(a.labels, b.labels)


def test_colour_and_overlay(seg):
    image = _image(40, 60)
    labels = np.zeros((40, 60), np.uint8)
    labels[:, 30:] = 13
    color = seg.colorize(labels)
    assert color.shape == (40, 60, 3)
    assert tuple(color[0, 0]) == (128, 64, 128) and tuple(color[0, 59]) == (0, 0, 142)
    assert np.array_equal(seg.overlay(image, labels, alpha=1.0), color)
    assert np.array_equal(seg.overlay(image, labels, alpha=0.0), image)


def test_untrained_weights_warn(weights, caplog):
    with caplog.at_level(logging.WARNING):
        Segmenter.from_checkpoint(weights, device="cpu", warmup=False)
    assert "UNTRAINED" in caplog.text


def test_auto_precision_is_bf16_on_cpus_with_amx_only():
    assert resolve_precision("auto", "cpu", frozenset({"avx2", "avx512f", "avx512_bf16"})) == "fp32"
    assert resolve_precision("auto", "cpu", frozenset({"avx512f", "amx_tile", "amx_bf16", "amx_int8"})) == "bf16"
    assert resolve_precision("auto", "cuda:0", frozenset({"amx_bf16"})) == "fp16"
    assert resolve_precision("fp32", "cpu", frozenset({"amx_bf16"})) == "fp32"
    assert resolve_precision("bf16", "cpu", frozenset()) == "bf16"


def test_forward_gives_float32_in_bf16_too(weights):
    seg = Segmenter.from_checkpoint(weights, device="cpu", precision="bf16", warmup=False)
    logits, edges = seg.forward(seg.preprocess(_image(64, 96, seed=3)))
    assert logits.dtype == edges.dtype == torch.float32
    assert logits[0].numpy().shape[0] == seg.meta.num_classes


def test_bad_arguments(weights):
    with pytest.raises(ValueError, match="auto, cpu, cuda"):
        resolve_device("gpu")
    with pytest.raises(ValueError, match="fp32, fp16, bf16"):
        resolve_precision("int4", "cpu")
    with pytest.raises(ValueError, match="needs a CUDA device"):
        resolve_precision("fp16", "cpu")
    with pytest.raises(ValueError, match="input_scale"):
        Segmenter.from_checkpoint(weights, device="cpu", input_scale=0.0, warmup=False)
    with pytest.raises(CheckpointError, match="not found"):
        Segmenter.from_checkpoint(weights.parent / "missing.pt", device="cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the errors raised on a machine without CUDA")
def test_cuda_request_without_cuda():
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda:0")
    assert resolve_device("auto") == resolve_device("auto", "tensorrt") == "cpu"


def test_onnxruntime_device_follows_its_providers():
    """``auto`` asks onnxruntime itself, not torch: a CPU onnxruntime stays on the CPU beside a CUDA torch."""
    from bialign_ros.backends.ort_runner import gpu_providers

    assert resolve_device("cpu", "onnxruntime") == "cpu"
    if gpu_providers():
        assert resolve_device("auto", "onnxruntime") == "cuda"
        assert resolve_device("cuda:1", "onnxruntime") == "cuda:1"
    else:
        assert resolve_device("auto", "onnxruntime") == "cpu"
        with pytest.raises(ValueError, match="no CUDA or TensorRT execution provider"):
            resolve_device("cuda", "onnxruntime")


def test_bad_images(seg):
    with pytest.raises(ValueError, match="uint8 RGB"):
        seg.segment(np.zeros((32, 32), np.uint8))
    with pytest.raises(ValueError, match="uint8 RGB"):
        seg.segment(np.zeros((32, 32, 3), np.float32))
    with pytest.raises(ValueError, match="too small"):
        seg.segment(np.zeros((4, 32, 3), np.uint8))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_fp16_agrees_with_cpu(weights):
    image = _image(128, 256)
    cpu = Segmenter.from_checkpoint(weights, device="cpu", warmup=False).segment(image)
    gpu = Segmenter.from_checkpoint(weights, device="cuda", warmup=False).segment(image)
    assert (cpu.labels == gpu.labels).mean() > 0.95


def test_backend_and_precision_choices_are_checked(weights):
    with pytest.raises(ValueError, match="bialign_export --weights W.pt"):
        Segmenter.from_checkpoint(weights, device="cpu", backend="onnxruntime", warmup=False)
    with pytest.raises(ValueError, match="auto, torch, onnxruntime, tensorrt"):
        Segmenter.from_checkpoint(weights, device="cpu", backend="openvino", warmup=False)
    with pytest.raises(ValueError, match="bialign_quantize"):
        Segmenter.from_checkpoint(weights, device="cpu", precision="int8", warmup=False)


def test_torch_backend_reports_itself(seg):
    assert seg.backend == "torch" and seg.device == "cpu" and seg.precision == "fp32"
    assert isinstance(seg.model, torch.nn.Module)
    assert seg.runner.fixed_size is None and seg.runner.size_multiple == 1


def test_input_scale_runs_the_network_on_the_resized_image(weights):
    half = Segmenter.from_checkpoint(weights, device="cpu", input_scale=0.5, warmup=False)
    image = _image(96, 160, seed=8)
    small = cv2.resize(image, (80, 48), interpolation=cv2.INTER_AREA)
    assert half.network_size(96, 160) == (48, 80)
    assert np.array_equal(half.network_input(image), small)
    # How the outputs come back to the image's size: test_upsample.py.


def test_segment_batch_matches_single_images(seg):
    images = [_image(48, 64, seed=s) for s in (10, 11)]
    batch = seg.segment_batch(images, edges=False)
    assert [r.edges for r in batch] == [None, None]
    for image, res in zip(images, batch):
        assert (seg.segment(image).labels == res.labels).mean() > 0.999
