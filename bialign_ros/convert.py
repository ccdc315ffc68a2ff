"""Conversion of the authors' released BiAlignNet / DFNet files into bialign_ros checkpoints.

Two kinds of source files exist: full BiAlignNet checkpoints (a dict with ``state_dict`` whose
keys carry DataParallel's ``module.`` prefix, plus ``epoch``, ``mean_iu``, ...) and ImageNet
DFNet backbone files (a bare state dict of the backbone, possibly with a classifier). Unlike
the authors' loader, which silently skips keys that do not fit, every mismatch is an error
naming the keys.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from bialign_ros.checkpoint import ModelMeta, save_checkpoint
from bialign_ros.classes import NUM_CLASSES
from bialign_ros.model import ARCHITECTURES, build_model, load_backbone_state_dict


class ConversionError(ValueError):
    """The source file does not fit the requested architecture."""


def _short(keys: list[str], limit: int = 12) -> str:
    keys = sorted(keys)
    more = f" ... and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def read_source(path: str | Path, trust: bool = False) -> dict[str, Any]:
    """Load an authors' file; ``trust`` allows full unpickling (only for files you trust)."""
    path = Path(path)
    if not path.is_file():
        raise ConversionError(f"source file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as exc:
        raise ConversionError(
            f"{path} holds objects beyond tensors and plain containers (e.g. numpy scalars in its "
            f"training metadata); if you trust the file, pass --trust-source ({exc})"
        ) from exc
    except Exception as exc:
        raise ConversionError(f"cannot read {path}: {exc}") from exc
    if not isinstance(obj, dict):
        raise ConversionError(f"{path} does not hold a dict of weights (found {type(obj).__name__})")
    return obj


def state_dict_of(obj: dict[str, Any], src: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a loaded weights file: unwrapped from ``state_dict``/``model`` entries (at
    any depth) and from DataParallel's ``module.`` prefix; anything else that is not a tensor
    raises :class:`ConversionError` naming it."""
    state = obj
    while (inner := next((state[k] for k in ("state_dict", "model") if isinstance(state.get(k), dict)), None)):
        state = inner
    other = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if other:
        raise ConversionError(f"{src}: the weights hold non-tensor entries: {_short(other)}")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _plain_number(value: Any) -> Any:
    try:
        return float(value) if not isinstance(value, int) else value
    except (TypeError, ValueError):
        return None


def detect_arch(keys: list[str]) -> str:
    """Guess the architecture from the backbone's stage names."""
    names = {k.split(".")[1] if k.startswith("backbone.") else k.split(".")[0] for k in keys}
    if "stage2_1" in names:
        return "bialign_dfnet2"
    if "stage5" in names:
        return "bialign_dfnet1"
    raise ConversionError("cannot tell DFNetV1 from DFNetV2: no 'stage2_1' or 'stage5' keys found")


def convert(src: str | Path, dst: str | Path, arch: str | None = None, trust: bool = False) -> ModelMeta:
    """Convert ``src`` into a bialign_ros checkpoint at ``dst`` and return its metadata."""
    obj = read_source(src, trust)
    state = state_dict_of(obj, src)
    detected = detect_arch(list(state))
    if arch is None:
        arch = detected
    elif arch not in ARCHITECTURES:
        raise ConversionError(f"--arch must be one of {', '.join(ARCHITECTURES)}; got {arch!r}")
    elif arch != detected:
        raise ConversionError(f"{src} holds a {detected} model, not {arch}")
    training: dict[str, Any] = {"converted_from": str(Path(src).name)}
    for key in ("epoch", "mean_iu"):
        if key in obj and _plain_number(obj[key]) is not None:
            training[f"source_{key}"] = _plain_number(obj[key])

    if any(k.startswith("backbone.") for k in state):
        model = _full_model(state, arch, src)
    else:
        torch.manual_seed(0)
        model = build_model(arch, aux=True, edge=True)
        try:
            ignored = load_backbone_state_dict(model, state)
        except ValueError as exc:
            raise ConversionError(f"{src}: {exc}") from exc
        training.update(backbone_only=True, ignored_keys=sorted(ignored))
    meta = ModelMeta(arch=arch, training=training)
    save_checkpoint(dst, model.state_dict(), meta)
    return meta


def _full_model(state: dict[str, torch.Tensor], arch: str, src: str | Path) -> torch.nn.Module:
    head = state.get("conv_out.conv_out.weight")
    if head is None or head.shape[0] % 64:
        raise ConversionError(f"{src}: no main head 'conv_out.conv_out.weight' with 64*C outputs")
    num_classes = head.shape[0] // 64
    if num_classes != NUM_CLASSES:
        raise ConversionError(f"{src} predicts {num_classes} classes, not the {NUM_CLASSES} Cityscapes classes; "
                              "its files carry no class names, so bialign_convert cannot name them")
    aux = any(k.startswith("cxt16_aux.") for k in state)
    edge = any(k.startswith("spatial_out.") for k in state)
    model = build_model(arch, num_classes=num_classes, aux=aux, edge=edge)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in expected.items()
             if k in state and state[k].shape != v.shape]
    problems = []
    if missing:
        problems.append(f"missing keys: {_short(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_short(unexpected)}")
    if wrong:
        problems.append(f"shape mismatches: {_short(wrong)}")
    if problems:
        raise ConversionError(f"{src} does not fit {arch}: " + "; ".join(problems))
    model.load_state_dict(state, strict=True)
    return model
