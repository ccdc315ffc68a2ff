"""Seeded untrained checkpoints, for tests, benchmarks and demos that have no trained weights."""

from __future__ import annotations

from pathlib import Path

import torch

from bialign_ros.checkpoint import ModelMeta, save_checkpoint
from bialign_ros.model import build_model


def untrained_checkpoint(path: str | Path, arch: str = "bialign_dfnet2", seed: int = 0) -> Path:
    """Write a checkpoint with freshly initialised (seeded) weights and return its path.

    The metadata marks it ``untrained`` so that every tool using it can warn that its labels
    are noise.
    """
    torch.manual_seed(seed)
    model = build_model(arch, aux=False, edge=True)
    meta = ModelMeta(arch=arch, training={"untrained": True, "seed": seed})
    return save_checkpoint(path, model.state_dict(), meta)
