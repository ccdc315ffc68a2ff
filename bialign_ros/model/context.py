"""Context path head: the Pyramid Pooling Module (PSPNet, Zhao et al. 2017) on the 1/32 features."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PyramidPoolingModule(nn.Module):
    """Average-pool to 1x1, 2x2, 3x3, 6x6 bins, 1x1 conv + BN each (no ReLU), upsample, concatenate
    with the input and fuse with 1x1 conv + BN + ReLU + Dropout2d(0.1).

    Produces the context features C of the paper.
    """

    def __init__(self, in_ch: int = 512, out_ch: int = 128, bins: tuple[int, ...] = (1, 2, 3, 6)):
        super().__init__()
        self.stages = nn.ModuleList(
            nn.Sequential(
                nn.AdaptiveAvgPool2d(bins_n),
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
        pooled = [F.interpolate(stage(x), size=size, mode="bilinear", align_corners=True) for stage in self.stages]
        return self.bottleneck(torch.cat([*pooled, x], dim=1))
