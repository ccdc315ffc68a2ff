"""Spatial Path (BiSeNet-style): three strided convolutions keep detail at 1/8 resolution."""

from __future__ import annotations

import torch
from torch import nn

from bialign_ros.model.layers import ConvBNReLU


class SpatialPath(nn.Module):
    """7x7 s2 3->64, 3x3 s2 64->64, 3x3 s2 64->64, 1x1 64->128 (each conv + BN + ReLU).

    Produces the spatial features S of the paper (128 ch, 1/8).
    """

    def __init__(self):
        super().__init__()
        self.conv1 = ConvBNReLU(3, 64, kernel_size=7, stride=2, padding=3)
        self.conv2 = ConvBNReLU(64, 64, kernel_size=3, stride=2, padding=1)
        self.conv3 = ConvBNReLU(64, 64, kernel_size=3, stride=2, padding=1)
        self.conv_out = ConvBNReLU(64, 128, kernel_size=1, stride=1, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_out(self.conv3(self.conv2(self.conv1(x))))
