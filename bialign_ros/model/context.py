"""Context path head: the Pyramid Pooling Module (PSPNet, Zhao et al. 2017) on the 1/32 features."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def bin_average_matrix(n: int, bins: int, like: torch.Tensor) -> torch.Tensor:
    """The ``bins`` x ``n`` matrix of adaptive average pooling along one axis of length ``n``.

    Bin i averages positions floor(i * n / bins) to ceil((i + 1) * n / bins) - 1, as
    ``nn.AdaptiveAvgPool2d`` does; built from ``arange`` so that exports keep ``n`` symbolic.
    """
    i = torch.arange(bins, device=like.device)
    start = torch.div(i * n, bins, rounding_mode="floor")
    end = torch.div((i + 1) * n + bins - 1, bins, rounding_mode="floor")
    pos = torch.arange(n, device=like.device)
    inside = (pos[None, :] >= start[:, None]) & (pos[None, :] < end[:, None])
    return inside.to(like.dtype) / (end - start).to(like.dtype)[:, None]


def bin_average(x: torch.Tensor, bins: int) -> torch.Tensor:
    """Adaptive average pooling of N x C x H x W ``x`` to ``bins`` x ``bins`` as two matrix products
    with :func:`bin_average_matrix` (what ONNX export records)."""
    h, w = x.shape[-2:]
    rows, cols = bin_average_matrix(h, bins, x), bin_average_matrix(w, bins, x)
    return torch.matmul(torch.matmul(rows, x), cols.t())


class BinAveragePool(nn.Module):
    """Adaptive average pooling to ``bins`` x ``bins``; under ``torch.export`` (ONNX export) as two
    small matrix products.

    The products equal ``nn.AdaptiveAvgPool2d(bins)`` up to summation order, for any input size, and
    export to ONNX with symbolic height and width (adaptive pooling does not when the size is not a
    multiple of the bins). Eager PyTorch pools directly: on channels-last features the products
    become 512 strided batched products, measured at 15-22 ms for the four pools of a 1024x512
    frame called from the main thread and 262 ms from any other (where the node runs inference),
    against 0.2-0.4 ms pooled.
    """

    def __init__(self, bins: int):
        super().__init__()
        self.bins = bins

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return bin_average(x, self.bins) if torch.compiler.is_exporting() else F.adaptive_avg_pool2d(x, self.bins)


class PyramidPoolingModule(nn.Module):
    """Average-pool to 1x1, 2x2, 3x3, 6x6 bins, 1x1 conv + BN each (no ReLU), upsample, concatenate
    with the input and fuse with 1x1 conv + BN + ReLU + Dropout2d(0.1).

    Produces the context features C of the paper.
    """

    def __init__(self, in_ch: int = 512, out_ch: int = 128, bins: tuple[int, ...] = (1, 2, 3, 6)):
        super().__init__()
        self.stages = nn.ModuleList(
            nn.Sequential(
                BinAveragePool(bins_n),
                nn.Conv2d(in_ch, out_ch, kernel_size=1, bias=False),
                nn.BatchNorm2d(out_ch),
            )
            for bins_n in bins
        )
        self.bottleneck = nn.Sequential(
            nn.Conv2d(in_ch + len(bins) * out_ch, out_ch, kernel_size=1, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(),
            nn.Dropout2d(0.1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        pooled = [F.interpolate(stage(x), size=size, mode="bilinear", align_corners=True)
                  for stage in self.stages]
        return self.bottleneck(torch.cat([*pooled, x], dim=1))
