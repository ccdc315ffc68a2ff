"""BiAlignNet (Wu et al., "Fast and Accurate Scene Parsing via Bi-Direction Alignment Networks",
ICIP 2021): a DFNet context path with pyramid pooling, a spatial path, two flow-alignment
modules that align each path to the other, a pixel-shuffle segmentation head, an edge head on
the aligned spatial features and two auxiliary heads for deep supervision.
"""

from __future__ import annotations

import torch
from torch import nn

from bialign_ros.model.align import GATES, FlowAlignment
from bialign_ros.model.context import PyramidPoolingModule
from bialign_ros.model.dfnet import DFNetV1, DFNetV2
from bialign_ros.model.heads import AuxHead, PixelShuffleHead
from bialign_ros.model.layers import resize
from bialign_ros.model.spatial import SpatialPath

BACKBONES: dict[str, type[nn.Module]] = {"bialign_dfnet2": DFNetV2, "bialign_dfnet1": DFNetV1}
ARCHITECTURES: tuple[str, ...] = tuple(BACKBONES)
CLASS_LAYERS: tuple[str, ...] = ("conv_out.conv_out", "cxt16_aux.conv_out", "cxt8_aux.conv_out")
"""The layers whose output channels are the classes: the main head's 1x1 conv (64 channels a
class, before its pixel shuffle) and the two auxiliary heads. Everything else is class-agnostic."""


class BiAlignNet(nn.Module):
    """BiAlignNet with a DFNetV2 or DFNetV1 backbone.

    Attribute names reproduce the authors' state-dict keys, so their checkpoints load strictly
    (after removing the ``module.`` prefix). ``aux=False`` / ``edge=False`` leave out the
    auxiliary heads (``cxt16_aux``, ``cxt8_aux``) / the edge head (``spatial_out``).

    ``forward(x)`` takes a normalised N x 3 x H x W batch of any H, W. Every output is N x K x H x W:

    - eval mode: ``(logits, edge_prob)``; ``edge_prob`` is the sigmoid of the edge head (N x 1 x
      H x W, in [0, 1]), or ``None`` for a model built with ``edge=False``.
    - train mode: a dict with ``"main"`` (logits), ``"edge_logits"`` (edge head before the
      sigmoid, if ``edge``), ``"aux16"`` and ``"aux8"`` (auxiliary logits, if ``aux``).
      Batch norm needs more than one value per channel here: use batches of at least 2.

    Heads whose output is not H x W (any size that is not a multiple of 8) are resized
    bilinearly with ``align_corners=True``, as the authors resize the main head; the edge head
    is resized before the sigmoid, so ``edge_prob == sigmoid(edge_logits)`` at every size.
    The constructor arguments are kept as attributes (``arch``, ``num_classes``, ``gate_type``,
    ``aux``, ``edge``).
    """

    def __init__(
        self,
        arch: str = "bialign_dfnet2",
        num_classes: int = 19,
        gate: str = "simple",
        aux: bool = True,
        edge: bool = True,
    ):
        super().__init__()
        if arch not in BACKBONES:
            raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
        if gate not in GATES:
            raise ValueError(f"unknown flow gate {gate!r}; choose one of {', '.join(GATES)}")
        self.arch = arch
        self.num_classes = num_classes
        self.gate_type = gate
        self.aux = aux
        self.edge = edge

        self.backbone = BACKBONES[arch]()
        self.ppm = PyramidPoolingModule(512, 128)
        self.sp = SpatialPath()
        if edge:
            self.spatial_out = PixelShuffleHead(128, 64, 1, factor=8)
        self.spatial2Context = FlowAlignment(128, 64, gate=gate, warp="high")
        self.context2Spatial = FlowAlignment(128, 64, gate=gate, warp="low")
        self.conv_out = PixelShuffleHead(256, 256, num_classes, factor=8)
        if aux:
            c8, c16, _ = self.backbone.out_channels
            self.cxt16_aux = AuxHead(c16, num_classes, factor=16)
            self.cxt8_aux = AuxHead(c8, num_classes, factor=16)

    def forward(self, x: torch.Tensor):
        size = x.shape[-2:]
        feat8, feat16, feat32 = self.backbone(x)
        context = self.ppm(feat32)
        spatial = self.sp(x)
        context_aligned = self.spatial2Context(spatial, context)
        spatial_aligned = self.context2Spatial(spatial, context)
        logits = resize(self.conv_out(torch.cat([context_aligned, spatial_aligned], dim=1)), size)
        edge_logits = resize(self.spatial_out(spatial_aligned), size) if self.edge else None

        if not self.training:
            return logits, None if edge_logits is None else torch.sigmoid(edge_logits)

        out = {"main": logits}
        if edge_logits is not None:
            out["edge_logits"] = edge_logits
        if self.aux:
            out["aux16"] = resize(self.cxt16_aux(feat16), size)
            out["aux8"] = resize(self.cxt8_aux(feat8), size)
        return out
