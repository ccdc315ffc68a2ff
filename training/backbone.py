"""The ImageNet backbone a training run starts from: reading its file, loading it, requiring it.

The authors always start from their ImageNet DFNet weights (``df2_imagenet.pth`` for
``bialign_dfnet2``, ``df1_imagenet.pth`` for ``bialign_dfnet1``, linked from the README of
github.com/jojacola/BiAlignNet); from random weights the model ends several points lower. So a
run that starts from neither a backbone nor a whole checkpoint must say so:
``model.backbone_weights: none``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from bialign_ros.convert import ConversionError, read_source, state_dict_of
from bialign_ros.model import BiAlignNet, load_backbone_state_dict
from training.config import ConfigError, ModelConfig

NO_BACKBONE = "none"
"""``model.backbone_weights`` value of a run that starts from random weights on purpose."""

IMAGENET_FILES = {"bialign_dfnet2": "df2_imagenet.pth", "bialign_dfnet1": "df1_imagenet.pth"}


def require_start(cfg: ModelConfig) -> None:
    """Raise :class:`ConfigError` when a run would silently start from random weights."""
    if cfg.init_weights or cfg.backbone_weights:
        return
    file = IMAGENET_FILES.get(cfg.arch, "the ImageNet DFNet weights")
    raise ConfigError(
        f"model.backbone_weights is not set: {cfg.arch} trains from the authors' ImageNet backbone "
        f"{file} (linked from the README of github.com/jojacola/BiAlignNet). Pass --backbone-weights "
        f"/path/to/{file}, or --init-weights W.pt to fine-tune a whole checkpoint, or "
        f"--set model.backbone_weights={NO_BACKBONE} to start from random weights (several mIoU points lower)"
    )


def read_backbone_file(path: str | Path, trust_source: bool = False) -> dict[str, torch.Tensor]:
    """Tensors of an ImageNet DFNet file, keyed as in the model's backbone.

    Accepts a flat state dict, one wrapped in ``state_dict``/``model`` entries, DataParallel's
    ``module.`` prefix and a whole segmentation network's ``backbone.`` prefix; other keys (an
    ImageNet classifier ``fc.*``, heads) are kept for the loader to ignore and name. Files with
    numpy scalars or other objects load only with ``trust_source`` (full unpickling).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"backbone weights file not found: {path}")
    try:
        state = state_dict_of(read_source(path, trust_source), path)
    except ConversionError as exc:
        raise ValueError(f"backbone weights: {exc}") from None
    if any(k.startswith("backbone.") for k in state):
        state = {k.removeprefix("backbone."): v for k, v in state.items()}
    return state


def load_backbone(model: BiAlignNet, cfg: ModelConfig) -> str:
    """Load ``cfg.backbone_weights`` into ``model.backbone``; returns what was loaded, for the log."""
    state = read_backbone_file(cfg.backbone_weights, cfg.backbone_trust_source)
    ignored = load_backbone_state_dict(model, state)
    used = sorted({k.split(".", 1)[0] for k in state if k not in ignored})
    note = f"; ignored {len(ignored)} other keys ({', '.join(ignored[:4])}{', ...' if len(ignored) > 4 else ''})"
    return (f"backbone weights: {len(state) - len(ignored)} tensors from {cfg.backbone_weights} "
            f"({', '.join(used)})" + (note if ignored else ""))
