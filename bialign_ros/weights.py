"""Seeded untrained checkpoints, for tests, benchmarks and demos that have no trained weights."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from bialign_ros.checkpoint import ModelMeta, save_checkpoint
from bialign_ros.model import build_model


def randomize_batch_norm_statistics(model: nn.Module) -> nn.Module:
    """Give every BatchNorm2d running statistics away from (0, 1) and a scale and shift away from
    (1, 0), from torch's global generator, in place.

    Fresh batch norms are nearly the identity in eval mode, so folding them into the convolutions
    (or an export that mishandles them) would change nothing a test can see.
    """
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return model


def untrained_checkpoint(path: str | Path, arch: str = "bialign_dfnet2", seed: int = 0,
                         batch_norm_statistics: bool = False) -> Path:
    """Write a checkpoint with freshly initialised (seeded) weights and return its path.

    ``batch_norm_statistics`` also randomises the batch norms' running statistics and affine
    parameters (:func:`randomize_batch_norm_statistics`). The metadata marks the file ``untrained`` so that
    every tool using it can warn that its labels are noise.
    """
    torch.manual_seed(seed)
    model = build_model(arch, aux=False, edge=True)
    if batch_norm_statistics:
        randomize_batch_norm_statistics(model)
    meta = ModelMeta(arch=arch, training={"untrained": True, "seed": seed})
    return save_checkpoint(path, model.state_dict(), meta)
