"""Output heads: the pixel-shuffle segmentation/edge head and the auxiliary (deep supervision) head."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bialign_ros.model.layers import ConvBNReLU, init_conv_unit_gain


class PixelShuffleHead(nn.Module):
    """3x3 ConvBNReLU, 1x1 conv to ``out_ch * factor**2`` channels, PixelShuffle(``factor``).

    The main segmentation head (on the fused features) and the edge head (on the aligned
    spatial features) of the paper. The output is ``factor`` times the input size; the network
    resizes it to the image size.
    """

    def __init__(self, in_ch: int, mid_ch: int, out_ch: int, factor: int = 8):
        super().__init__()
        self.conv = ConvBNReLU(in_ch, mid_ch, kernel_size=3, stride=1, padding=1)
        self.conv_out = nn.Conv2d(mid_ch, out_ch * factor * factor, kernel_size=1, bias=True)
        self.up = nn.PixelShuffle(factor)
        init_conv_unit_gain(self.conv_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.conv_out(self.conv(x)))


class AuxHead(nn.Module):
    """Auxiliary training head: 1x1 conv to class logits, bilinear upsample by ``factor``."""

    def __init__(self, in_ch: int, num_classes: int, factor: int = 16):
        super().__init__()
        self.factor = factor
        self.conv_out = nn.Conv2d(in_ch, num_classes, kernel_size=1, bias=True)
        init_conv_unit_gain(self.conv_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(self.conv_out(x), scale_factor=self.factor, mode="bilinear", align_corners=True)
