"""Constructing BiAlignNet models and loading ImageNet backbone weights into them."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from bialign_ros.model.bialign import BiAlignNet


def build_model(
    arch: str = "bialign_dfnet2",
    num_classes: int = 19,
    gate: str = "simple",
    aux: bool = True,
    edge: bool = True,
) -> BiAlignNet:
    """Build a randomly initialised BiAlignNet.

    ``arch`` is one of ``ARCHITECTURES``, ``gate`` one of ``GATES`` (the authors'
    released models use ``"simple"``). ``aux``/``edge`` add the auxiliary and edge heads.
    Raises ValueError naming the allowed values for a bad argument.
    """
    return BiAlignNet(arch=arch, num_classes=num_classes, gate=gate, aux=aux, edge=edge)


def count_parameters(model: nn.Module) -> int:
    """Total number of parameter elements (trainable or not; buffers excluded)."""
    return sum(p.numel() for p in model.parameters())


def load_backbone_state_dict(model: BiAlignNet, state_dict: Mapping[str, torch.Tensor]) -> list[str]:
    """Copy ImageNet DFNet weights (keys as in ``model.backbone``, e.g. ``stage1.0.weight``) into
    ``model.backbone``.

    Every backbone tensor must be present with the right shape; only ``num_batches_tracked``
    counters may be absent (old checkpoints lack them). Keys that are not part of the backbone,
    such as an ImageNet classifier ``fc.*``, are ignored and returned, sorted. Raises ValueError
    naming the missing and mismatched keys.
    """
    expected = model.backbone.state_dict()
    missing = [k for k in expected if k not in state_dict and not k.endswith("num_batches_tracked")]
    mismatched = [
        f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and state_dict[k].shape != v.shape
    ]
    if missing or mismatched:
        problems = []
        if missing:
            problems.append(f"{len(missing)} missing keys: {', '.join(missing)}")
        if mismatched:
            problems.append(f"{len(mismatched)} mismatched shapes: {'; '.join(mismatched)}")
        raise ValueError(f"backbone weights do not fit {type(model.backbone).__name__}: " + ". ".join(problems))
    model.backbone.load_state_dict({k: state_dict[k] for k in expected if k in state_dict}, strict=True)
    return sorted(k for k in state_dict if k not in expected)
