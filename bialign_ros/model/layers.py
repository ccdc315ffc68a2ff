"""Small building blocks shared by the BiAlignNet modules."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.fx.experimental.symbolic_shapes import statically_known_true


def init_conv_unit_gain(conv: nn.Conv2d) -> None:
    """Kaiming-normal init with gain 1 (``a=1``) and zero bias, as the authors use in their heads."""
    nn.init.kaiming_normal_(conv.weight, a=1)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


def known_true(condition: bool | torch.SymBool | torch.Tensor) -> bool:
    """True when ``condition`` holds for every input: plain truth for Python and traced values, and for
    the symbolic sizes of an export only what is provable without adding a guard."""
    if isinstance(condition, torch.Tensor):  # sizes are tensors under torch.jit.trace
        return bool(condition)
    return statically_known_true(condition)


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize with ``align_corners=True``; returns ``x`` itself when it already has ``size``.

    Skipping the same-size case is exact: with ``align_corners=True`` such a resize is the identity.
    Under an export with symbolic sizes the resize is skipped only where the sizes are provably
    equal (no guard is added), so the graph stays right for every size.
    """
    if all(known_true(a == b) for a, b in zip(x.shape[-2:], size)):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


class ConvBNReLU(nn.Module):
    """Convolution without bias, batch norm, ReLU (sub-modules ``conv``, ``bn``, ``relu``)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3, stride: int = 1, padding: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        init_conv_unit_gain(self.conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))
