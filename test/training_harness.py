"""Short CPU trainings for tests: weights that have learnt something, made in the test session."""

from __future__ import annotations

from pathlib import Path

from training.config import load_config
from training.distributed import DistContext
from training.train import TrainResult, train


def train_briefly(root: str | Path, out_dir: str | Path, steps: int, batch_size: int = 8) -> TrainResult:
    """A short CPU training from scratch on the Cityscapes-format set at ``root`` (AdamW, 64-pixel
    crops) into ``out_dir``; returns the training result (``out_dir / "final.pt"``)."""
    cfg = load_config(None, [
        f"data.root={root}", f"out_dir={out_dir}", "device=cpu", "seed=0", "model.backbone_weights=none",
        "data.crop_size=64", "data.scale_min=0.75", "data.scale_max=1.5", "data.workers=1",
        "data.class_uniform_tile=64", "optim.optimizer=adamw", "optim.lr=0.003", f"optim.iterations={steps}",
        f"optim.batch_size={batch_size}", f"optim.batch_per_device={batch_size}", "loss.ohem_min_kept=1000",
        "loss.edge_ohem_min_kept=500", "val_every=0", "ckpt_every=0",
    ])
    result = train(cfg, DistContext(), progress=False)
    assert result.step == steps
    return result
