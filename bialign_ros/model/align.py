"""Flow alignment between the spatial (S) and context (C) features, with its flow gates.

A :class:`FlowAlignment` module predicts a 2-channel flow field at the spatial resolution
(1/8) from both features and resamples one of them along that flow. BiAlignNet uses two of
them with separate weights: spatial->context warps C into C~ (a learned upsampling of the
context), context->spatial warps S into S~.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from bialign_ros.model.layers import resize

GATES: tuple[str, ...] = ("simple", "gated_conv", "none")
"""Flow gates: the paper's sigmoid gate, the authors' alternative gated convolution, no gate."""


def unit_grid(n: int, device: torch.device) -> torch.Tensor:
    """``torch.linspace(-1, 1, n)`` in float32.

    Under ``torch.export`` (ONNX export) it is built from ``arange`` instead, equal within one
    rounding step, because the exporter freezes ``linspace`` to the traced size.
    """
    if torch.compiler.is_exporting():
        return torch.arange(n, dtype=torch.float32, device=device) * (2.0 / max(n - 1, 1)) - 1.0
    return torch.linspace(-1.0, 1.0, n, dtype=torch.float32, device=device)


def flow_warp(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample ``x`` (any size) on the flow's H x W grid displaced by ``flow`` (N x 2 x H x W, pixels).

    The base grid spans [-1, 1] in H x W steps (x first), the flow is divided by (W, H) of the
    output grid, and sampling is bilinear with zero padding and ``align_corners=False``, exactly
    as in the authors' trained model (so a flow of 2 pixels moves the sample by one output pixel).

    The grid is built and sampled in float32 whatever the input dtype and under any autocast:
    near the edges of [-1, 1] a bfloat16 grid is off by up to 2^-9, a quarter of a pixel at the
    256 columns of a 2048-wide frame's 1/8 resolution, which would move the samples during
    mixed-precision training while evaluation runs in float32. The result has ``x``'s dtype, and its
    channels-last memory when ``x`` has it.
    """
    h, w = flow.shape[-2:]
    dtype = x.dtype
    with _autocast_off(x.device.type):
        xs, ys = unit_grid(w, flow.device), unit_grid(h, flow.device)
        base = torch.stack((xs.expand(h, w), ys[:, None].expand(h, w)), dim=-1)
        flow = _as_float32(flow)
        # Divided by plain ints (not a tensor made of them), so that exports keep the sizes symbolic.
        grid = base + torch.stack((flow[:, 0] / w, flow[:, 1] / h), dim=-1)
        out = F.grid_sample(_as_float32(x), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if _channels_last(x) and not torch.compiler.is_exporting():
        # grid_sample writes N x C x H x W memory whatever it reads; every convolution after it would
        # reorder the features back to channels-last (bf16 at 1024x2048: 28 ms a frame in one of them)
        return out.to(dtype=dtype, memory_format=torch.channels_last)
    return out if out.dtype == dtype else out.to(dtype)


def _channels_last(t: torch.Tensor) -> bool:
    return t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()


def _as_float32(t: torch.Tensor) -> torch.Tensor:
    # A Python-level check, so float32 graphs (and their exports) hold no cast at all.
    return t if t.dtype == torch.float32 else t.float()


def _autocast_off(device_type: str) -> contextlib.AbstractContextManager:
    """Autocast disabled for ``device_type`` if it is on; a no-op otherwise (exports never see it)."""
    if torch.is_autocast_enabled(device_type):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()


class SimpleGate(nn.Module):
    """The paper's gate: 1x1 conv (with bias) + sigmoid on the feature being warped, giving one
    weight per flow channel; resized to the flow's size and multiplied into the flow."""

    def __init__(self, in_ch: int):
        super().__init__()
        self.gate = nn.Sequential(nn.Conv2d(in_ch, 2, kernel_size=1), nn.Sigmoid())

    def forward(self, low: torch.Tensor, high: torch.Tensor, warped: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        return flow * resize(self.gate(warped), flow.shape[-2:])


class GatedConvGate(nn.Module):
    """The authors' alternative gate: a scalar attention map from both features scales the flow
    by (1 + alpha), followed by a 1x1 conv on the flow."""

    def __init__(self, in_ch: int):
        super().__init__()
        self.feat_out1 = nn.Conv2d(in_ch, in_ch // 2, kernel_size=1)
        self.feat_out2 = nn.Conv2d(in_ch, in_ch // 2, kernel_size=1)
        self._gate_conv = nn.Sequential(
            nn.BatchNorm2d(in_ch),
            nn.Conv2d(in_ch, in_ch // 2, kernel_size=1),
            nn.ReLU(),
            nn.Conv2d(in_ch // 2, 1, kernel_size=1),
            nn.BatchNorm2d(1),
            nn.Sigmoid(),
        )
        self.out = nn.Conv2d(2, 2, kernel_size=1)

    def forward(self, low: torch.Tensor, high: torch.Tensor, warped: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        high = resize(self.feat_out2(high), low.shape[-2:])
        alpha = self._gate_conv(torch.cat([self.feat_out1(low), high], dim=1))
        return self.out(flow * (alpha + 1))


class FlowAlignment(nn.Module):
    """Flow alignment module (the paper's bidirectional alignment, one direction).

    ``forward(low, high)`` takes S (``low``, 1/8) and C (``high``, coarser): both are reduced by
    1x1 convs, C is upsampled to S's size, a 3x3 conv on [C, S] predicts the flow, the gate
    (if any) modulates it, and the feature selected by ``warp`` (``"high"`` or ``"low"``) is
    resampled on S's grid.
    """

    def __init__(self, in_ch: int = 128, mid_ch: int = 64, gate: str = "simple", warp: str = "high"):
        super().__init__()
        if warp not in ("high", "low"):
            raise ValueError(f"warp must be 'high' or 'low', got {warp!r}")
        self.warp_high = warp == "high"
        self.down_h = nn.Conv2d(in_ch, mid_ch, kernel_size=1, bias=False)
        self.down_l = nn.Conv2d(in_ch, mid_ch, kernel_size=1, bias=False)
        self.flow_make = nn.Conv2d(2 * mid_ch, 2, kernel_size=3, padding=1, bias=False)
        self.gate: nn.Module | None
        if gate == "simple":
            self.gate = SimpleGate(in_ch)
        elif gate == "gated_conv":
            self.gate = GatedConvGate(in_ch)
        elif gate == "none":
            self.gate = None
        else:
            raise ValueError(f"unknown flow gate {gate!r}; choose one of {', '.join(GATES)}")

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        size = low.shape[-2:]
        high_down = resize(self.down_h(high), size)
        flow = self.flow_make(torch.cat([high_down, self.down_l(low)], dim=1))
        warped = high if self.warp_high else low
        if self.gate is not None:
            flow = self.gate(low, high, warped, flow)
        return flow_warp(warped, flow)
