"""Tests of the BiAlignNet model definition (bialign_ros.model).

Reference numbers and golden outputs come from the authors' published code
(github.com/jojacola/BiAlignNet, commit 3cde010bfe722e5171ffee84417e7a045c134a33, files
network/bialign.py, network/dfnet.py, network/nn/operators.py), built on CPU with plain
``torch.nn.BatchNorm2d`` (their ``config.cfg.MODEL.BNFUNC``), ``apex.amp.float_function`` as
the identity, empty ImageNet backbone files and a criterion that returns the network outputs.

Golden files ``test/data/golden_bialign_dfnet{2,1}.npz`` were made with torch 2.13.0 (CPU) from
their ``BiAlignNet(backbone='dfv2'|'dfv1', gate='simple', aux=True, edgemap=True)``:

- weights: :func:`deterministic_state_dict` over their state dict (strict load);
- ``state_dict_keys``: their sorted state-dict keys;
- ``eval_96x160_*`` / ``eval_100x148_*``: eval mode on ``torch.randn(1, 3, H, W)`` from
  ``torch.Generator().manual_seed(0)``; logits and edge probability sampled every
  ``EVAL_STRIDE[size]``-th pixel. Their code computes the edge head only in training, so the edge
  probability is ``sigmoid(resize(spatial_out(aligned S)))``, with aligned S taken by a forward
  hook on ``context2Spatial`` and resize = bilinear, align_corners=True, to H x W;
- ``train_*``: train mode with the PSP dropout (``ppm.bottleneck.3``) in eval mode, on
  ``torch.randn(2, 3, 64, 96)`` from seed 1: main and auxiliary logits every 8th pixel, edge
  head output before the sigmoid (forward hook on ``spatial_out``) every 4th pixel.

Their outputs are not reproduced here; the files are read only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bialign_ros.model import (
    ARCHITECTURES,
    GATES,
    BiAlignNet,
    build_model,
    count_parameters,
    load_backbone_state_dict,
)
from bialign_ros.model.align import flow_warp
from bialign_ros.model.context import BinAveragePool, bin_average

DATA = Path(__file__).parent / "data"
EVAL_STRIDE = {(96, 160): 4, (100, 148): 5}
TRAIN_SHAPE, TRAIN_STRIDE = (2, 3, 64, 96), 8


def deterministic_state_dict(reference: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Reproducible weights for every entry of ``reference`` (only names and shapes are used).

    Entry i of the sorted key list is drawn from ``torch.Generator().manual_seed(i)``: conv
    weights N(0, 1/fan_in), norm scales 1 + N(0, 0.1), biases and running means N(0, 0.1),
    running variances 1 + |N(0, 0.25)|; integer counters are zero.
    """
    out = {}
    for i, key in enumerate(sorted(reference)):
        ref = reference[key]
        if not ref.is_floating_point():
            out[key] = torch.zeros_like(ref)
            continue
        noise = torch.randn(ref.shape, generator=torch.Generator().manual_seed(i))
        if ref.dim() == 4:
            out[key] = noise / math.sqrt(ref[0].numel())
        elif key.endswith("running_var"):
            out[key] = 1.0 + 0.25 * noise.abs()
        elif key.endswith("weight"):
            out[key] = 1.0 + 0.1 * noise
        else:
            out[key] = 0.1 * noise
    return out


def seeded_input(shape: tuple[int, ...], seed: int, requires_grad: bool = False) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)).requires_grad_(requires_grad)


def golden(arch: str) -> dict[str, np.ndarray]:
    with np.load(DATA / f"golden_{arch}.npz", allow_pickle=False) as f:
        return dict(f)


def model_with_golden_weights(arch: str) -> BiAlignNet:
    model = build_model(arch)
    model.load_state_dict(deterministic_state_dict(model.state_dict()), strict=True)
    return model


def assert_close_to_golden(ours: torch.Tensor, ref: np.ndarray, what: str) -> None:
    ref_t = torch.from_numpy(ref)
    assert ours.shape == ref_t.shape, what
    atol = 1e-4 * ref_t.abs().max().item()
    err = (ours - ref_t).abs().max().item()
    assert err <= atol, f"{what}: max abs difference {err:.3g} > {atol:.3g}"


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# Measured on the authors' model (see module docstring): parameters, state-dict entries.
AUTHORS_SIZES = [
    ("bialign_dfnet2", "simple", True, True, 18_986_762, 372),
    ("bialign_dfnet2", "simple", False, False, 18_901_412, 360),
    ("bialign_dfnet2", "simple", True, False, 18_908_746, 364),
    ("bialign_dfnet2", "simple", False, True, 18_979_428, 368),
    ("bialign_dfnet2", "gated_conv", True, True, 19_036_440, 408),
    ("bialign_dfnet2", "none", True, True, 18_986_246, 368),
    ("bialign_dfnet1", "simple", True, True, 9_532_682, 240),
    ("bialign_dfnet1", "simple", False, False, 9_447_332, 228),
]


@pytest.mark.parametrize(("arch", "gate", "aux", "edge", "params", "entries"), AUTHORS_SIZES)
def test_sizes_match_authors(arch, gate, aux, edge, params, entries):
    model = build_model(arch, gate=gate, aux=aux, edge=edge)
    assert count_parameters(model) == params
    assert len(model.state_dict()) == entries


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_state_dict_keys_and_shapes_match_authors(arch):
    ref_keys = set(golden(arch)["state_dict_keys"].tolist())
    sd = build_model(arch).state_dict()
    assert set(sd) == ref_keys
    assert sd["backbone.stage1.0.weight"].shape == (32, 3, 3, 3)
    assert sd["conv_out.conv_out.weight"].shape == (19 * 64, 256, 1, 1)
    assert sd["spatial_out.conv_out.weight"].shape == (64, 64, 1, 1)
    assert sd["spatial2Context.gate.gate.0.weight"].shape == (2, 128, 1, 1)
    assert sd["cxt16_aux.conv_out.weight"].shape == (19, 256, 1, 1)
    assert sd["cxt8_aux.conv_out.weight"].shape == (19, 128, 1, 1)


def test_optional_heads_leave_no_keys():
    keys = build_model(aux=False, edge=False).state_dict()
    assert not [k for k in keys if k.split(".")[0] in ("spatial_out", "cxt16_aux", "cxt8_aux")]


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("size", list(EVAL_STRIDE))
def test_eval_matches_authors_golden(arch, size):
    ref = golden(arch)
    model = model_with_golden_weights(arch).eval()
    with torch.no_grad():
        logits, edge = model(seeded_input((1, 3, *size), seed=0))
    s, tag = EVAL_STRIDE[size], f"{size[0]}x{size[1]}"
    assert_close_to_golden(logits[..., ::s, ::s], ref[f"eval_{tag}_logits"], f"{arch} {tag} logits")
    assert_close_to_golden(edge[..., ::s, ::s], ref[f"eval_{tag}_edge"], f"{arch} {tag} edge")


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_train_matches_authors_golden(arch):
    ref = golden(arch)
    model = model_with_golden_weights(arch).train()
    model.ppm.bottleneck[3].eval()  # the PSP dropout, switched off as in the golden
    with torch.no_grad():
        out = model(seeded_input(TRAIN_SHAPE, seed=1))
    s = TRAIN_STRIDE
    for name in ("main", "aux16", "aux8"):
        assert_close_to_golden(out[name][..., ::s, ::s], ref[f"train_{name}"], f"{arch} train {name}")
    assert_close_to_golden(
        out["edge_logits"][..., :: s // 2, :: s // 2], ref["train_edge_logits"], f"{arch} edge logits"
    )


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("size", [(97, 131), (64, 64), (33, 47)])
def test_any_input_size(arch, size):
    model = build_model(arch, num_classes=5)
    model.eval()
    with torch.no_grad():
        logits, edge = model(seeded_input((1, 3, *size), seed=2))
    assert logits.shape == (1, 5, *size)
    assert edge.shape == (1, 1, *size)
    assert 0.0 <= edge.min().item() <= edge.max().item() <= 1.0
    assert torch.isfinite(logits).all()

    model.train()
    out = model(seeded_input((2, 3, *size), seed=3))
    assert set(out) == {"main", "edge_logits", "aux16", "aux8"}
    for name, channels in (("main", 5), ("edge_logits", 1), ("aux16", 5), ("aux8", 5)):
        assert out[name].shape == (2, channels, *size), name


def test_optional_heads_outputs():
    model = build_model("bialign_dfnet1", aux=False, edge=False)
    x = seeded_input((2, 3, 64, 64), seed=4)
    assert set(model.train()(x)) == {"main"}
    logits, edge = model.eval()(x)
    assert logits.shape == (2, 19, 64, 64)
    assert edge is None


def test_edge_prob_is_sigmoid_of_train_edge_logits():
    model = build_model("bialign_dfnet1").eval()
    x = seeded_input((1, 3, 72, 88), seed=5)
    with torch.no_grad():
        _, edge = model(x)
        model.train()
        model.apply(lambda m: m.eval() if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.Dropout2d)) else None)
        edge_logits = model(x)["edge_logits"]
    torch.testing.assert_close(edge, torch.sigmoid(edge_logits))


def test_backward_reaches_input_and_every_parameter():
    model = build_model("bialign_dfnet2").train()
    x = seeded_input((2, 3, 64, 96), seed=6, requires_grad=True)
    out = model(x)
    loss = sum(v.square().mean() for v in out.values())
    loss.backward()
    assert x.grad is not None and x.grad.abs().sum().item() > 0
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert not no_grad


@pytest.mark.parametrize("gate", GATES)
def test_gate_variants_build_and_run(gate):
    model = build_model("bialign_dfnet1", gate=gate).eval()
    gate_keys = {k.split(".")[2] for k in model.state_dict() if k.startswith("spatial2Context.gate.")}
    assert (
        gate_keys
        == {"simple": {"gate"}, "gated_conv": {"feat_out1", "feat_out2", "_gate_conv", "out"}, "none": set()}[gate]
    )
    with torch.no_grad():
        logits, edge = model(seeded_input((1, 3, 48, 80), seed=7))
    assert logits.shape == (1, 19, 48, 80) and edge.shape == (1, 1, 48, 80)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"arch": "bialign_resnet18"}, "bialign_dfnet2, bialign_dfnet1"),
        ({"gate": "GatedConv"}, "simple, gated_conv, none"),
        ({"num_classes": 0}, "num_classes"),
        ({"num_classes": 19.0}, "num_classes"),
    ],
)
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_model(**kwargs)


def test_flow_of_two_pixels_shifts_by_one_pixel():
    # A horizontal ramp warped with a constant x-flow of 2 moves by exactly one pixel. The base
    # grid puts the border rows/columns half a pixel outside the image (zero padding): skip them.
    h, w = 6, 10
    ramp = torch.arange(w, dtype=torch.float32).expand(1, 1, h, w).contiguous()
    still = flow_warp(ramp, torch.zeros(1, 2, h, w))
    flow = torch.zeros(1, 2, h, w)
    flow[:, 0] = 2.0
    moved = flow_warp(ramp, flow)
    torch.testing.assert_close(moved[..., 1:-1, 1:-2] - still[..., 1:-1, 1:-2], torch.ones(1, 1, h - 2, w - 3))


def test_flow_warp_samples_coarse_input_on_fine_grid():
    coarse = seeded_input((1, 4, 3, 5), seed=8)
    out = flow_warp(coarse, torch.zeros(2, 2, 12, 20)[:1])
    assert out.shape == (1, 4, 12, 20)
    xs, ys = torch.linspace(-1, 1, 20), torch.linspace(-1, 1, 12)
    grid = torch.stack((xs.expand(12, 20), ys[:, None].expand(12, 20)), dim=-1)[None]
    torch.testing.assert_close(out, F.grid_sample(coarse, grid, align_corners=False), rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_flow_warp_under_autocast_samples_the_float32_positions(dtype):
    """Under mixed precision the features arrive in the autocast dtype; the grid and the
    sampling stay float32, so the result is the float32 warp of the same inputs, rounded once.
    At 256 columns (1/8 of a 2048-wide frame) a grid built in bfloat16 misses by up to 1/4 px."""
    x = seeded_input((1, 8, 128, 256), seed=3).to(dtype)
    flow = (seeded_input((1, 2, 128, 256), seed=4) * 3).to(dtype)
    reference = flow_warp(x.float(), flow.float()).to(dtype)
    with torch.autocast("cpu", dtype=dtype):
        out = flow_warp(x, flow)
    assert out.dtype == dtype
    assert torch.equal(out, reference)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_flow_warp_keeps_channels_last_memory(dtype):
    """Channels-last features come back channels-last (the convolutions after the warp read them so),
    with the values of the warp of the same features in N x C x H x W memory."""
    x = seeded_input((1, 8, 16, 24), seed=5).to(dtype)
    flow = seeded_input((1, 2, 16, 24), seed=6) * 3
    out = flow_warp(x.contiguous(memory_format=torch.channels_last), flow)
    assert out.dtype == dtype and out.is_contiguous(memory_format=torch.channels_last) and not out.is_contiguous()
    assert torch.equal(out, flow_warp(x, flow))
    assert flow_warp(x, flow).is_contiguous()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_flow_warp_under_cuda_autocast_samples_the_float32_positions():
    x = seeded_input((1, 8, 128, 256), seed=3).cuda().half()
    flow = (seeded_input((1, 2, 128, 256), seed=4) * 3).cuda().half()
    reference = flow_warp(x.float(), flow.float()).half()
    with torch.autocast("cuda", dtype=torch.float16):
        out = flow_warp(x, flow)
    torch.testing.assert_close(out, reference, rtol=0, atol=1e-3)


def backbone_file(arch: str) -> dict[str, torch.Tensor]:
    """An ImageNet-style backbone file: backbone keys without counters, plus a classifier."""
    sd = {k: v for k, v in build_model(arch).backbone.state_dict().items() if "num_batches" not in k}
    sd = deterministic_state_dict(sd)
    sd["fc.weight"] = torch.zeros(1000, 512)
    sd["fc.bias"] = torch.zeros(1000)
    return sd


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_load_backbone_state_dict(arch):
    weights = backbone_file(arch)
    model = build_model(arch)
    before = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("backbone.")}
    ignored = load_backbone_state_dict(model, weights)
    assert ignored == ["fc.bias", "fc.weight"]
    for k, v in model.backbone.state_dict().items():
        if k in weights:
            assert torch.equal(v, weights[k]), k
    for k, v in before.items():
        assert torch.equal(model.state_dict()[k], v), k


def test_load_backbone_state_dict_names_missing_and_mismatched_keys():
    weights = backbone_file("bialign_dfnet2")
    del weights["stage3_1.4.conv2.weight"]
    weights["stage1.1.weight"] = torch.ones(16)
    model = build_model("bialign_dfnet2")
    before = model.backbone.stage1[1].weight.detach().clone()
    with pytest.raises(ValueError, match=r"missing keys: stage3_1\.4\.conv2\.weight") as info:
        load_backbone_state_dict(model, weights)
    assert "stage1.1.weight: file (16,) vs model (32,)" in str(info.value)
    assert torch.equal(model.backbone.stage1[1].weight, before)


def test_dfnet1_weights_rejected_by_dfnet2():
    with pytest.raises(ValueError, match="DFNetV2"):
        load_backbone_state_dict(build_model("bialign_dfnet2"), backbone_file("bialign_dfnet1"))


@pytest.mark.parametrize("size", [(16, 32), (13, 27), (5, 7)])
def test_pyramid_pooling_pools_as_adaptive_average_pooling_in_eager_and_in_export_form(size):
    x = torch.randn(1, 8, *size).contiguous(memory_format=torch.channels_last)
    for bins in (1, 2, 3, 6):
        expected = torch.nn.AdaptiveAvgPool2d(bins)(x)
        assert torch.allclose(BinAveragePool(bins)(x), expected, atol=1e-6)
        # the matrix products ONNX export records, for sizes that are not multiples of the bins too
        assert torch.allclose(bin_average(x, bins), expected, atol=1e-6)
