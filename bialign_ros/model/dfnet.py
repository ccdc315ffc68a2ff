"""DFNet backbones (DFNetV1, DFNetV2) from "Partial Order Pruning" (Li et al., CVPR 2019).

Both are plain ResNet-style stacks of BasicBlocks after a two-convolution stem. They return
three feature maps ``(feat_a, feat_b, feat_c)`` that BiAlignNet names ``feat8, feat16, feat32``:

- DFNetV2: 128 ch at 1/8, 256 ch at 1/16, 512 ch at 1/32.
- DFNetV1: 128 ch at 1/16, 256 ch at 1/32, 512 ch at 1/32. The authors feed these to the same
  slots, so on DFNetV1 ``feat8``/``feat16`` are really 1/16 and 1/32 maps; the auxiliary heads
  resize to the input size anyway, and the weights were trained that way.
"""

from __future__ import annotations

import torch
from torch import nn


def conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution, padding 1, no bias."""
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 conv + BN, identity or 1x1-conv shortcut.

    The authors build ``bn1``/``bn2`` as plain BatchNorm even when they train with SyncBN (only
    the stem and shortcut norms follow their norm setting); with plain BatchNorm everywhere here,
    the trainer's SyncBN conversion makes every norm synchronised.
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv3x3(in_ch, out_ch, stride)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(out_ch, out_ch)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + shortcut)


def make_stage(in_ch: int, out_ch: int, blocks: int, stride: int) -> nn.Sequential:
    """A stage of ``blocks`` BasicBlocks; the first one changes stride/width (1x1 conv + BN shortcut)."""
    downsample = None
    if stride != 1 or in_ch != out_ch:
        downsample = nn.Sequential(
            nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=stride, bias=False),
            nn.BatchNorm2d(out_ch),
        )
    layers = [BasicBlock(in_ch, out_ch, stride, downsample)]
    layers += [BasicBlock(out_ch, out_ch) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


def make_stem() -> nn.Sequential:
    """Stem: 3x3 s2 conv 3->32, BN, ReLU, 3x3 s2 conv 32->64, BN, ReLU (output at 1/4)."""
    return nn.Sequential(
        nn.Conv2d(3, 32, kernel_size=3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(32),
        nn.ReLU(inplace=True),
        nn.Conv2d(32, 64, kernel_size=3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(inplace=True),
    )


class DFNetV1(nn.Module):
    """DFNetV1 backbone (8.0 M parameters); outputs at strides 16, 32, 32."""

    out_channels = (128, 256, 512)
    strides = (16, 32, 32)

    def __init__(self):
        super().__init__()
        self.stage1 = make_stem()
        self.stage2 = make_stage(64, 64, 3, stride=2)
        self.stage3 = make_stage(64, 128, 3, stride=2)
        self.stage4 = make_stage(128, 256, 3, stride=2)
        self.stage5 = make_stage(256, 512, 1, stride=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.stage2(self.stage1(x))
        s16 = self.stage3(x)
        s32 = self.stage4(s16)
        return s16, s32, self.stage5(s32)


class DFNetV2(nn.Module):
    """DFNetV2 backbone (17.5 M parameters); outputs at strides 8, 16, 32."""

    out_channels = (128, 256, 512)
    strides = (8, 16, 32)

    def __init__(self):
        super().__init__()
        self.stage1 = make_stem()
        self.stage2_1 = make_stage(64, 64, 2, stride=2)
        self.stage2_2 = make_stage(64, 128, 1, stride=1)
        self.stage3_1 = make_stage(128, 128, 10, stride=2)
        self.stage3_2 = make_stage(128, 256, 1, stride=1)
        self.stage4_1 = make_stage(256, 256, 4, stride=2)
        self.stage4_2 = make_stage(256, 512, 2, stride=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        s8 = self.stage2_2(self.stage2_1(self.stage1(x)))
        s16 = self.stage3_2(self.stage3_1(s8))
        s32 = self.stage4_2(self.stage4_1(s16))
        return s8, s16, s32
