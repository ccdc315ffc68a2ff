"""The training configuration: a YAML file read into frozen dataclasses, with CLI overrides.

Every field has the value of the authors' Cityscapes training as their code runs it as its
default, quirks included (see ``configs/cityscapes_bialign_dfnet2.yaml``; the switches that
depart from it are gathered in ``configs/cityscapes_bialign_dfnet2_improved.yaml``).
Overrides are ``section.field=value`` strings whose value is parsed as YAML (``optim.lr=0.02``,
``data.blur_sigma=[0.1,1.0]``). The whole config is stored in every checkpoint
(``meta.training["config"]``).
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from training.transforms import TrainAugmentation

AMP_MODES = ("auto", "bf16", "fp16", "off")
EVAL_AVERAGES = ("logits", "probabilities")
OPTIMIZERS = ("sgd", "adamw")
DEVICES = ("auto", "cpu", "cuda")


class ConfigError(ValueError):
    """A configuration file or override is malformed or holds an invalid value."""


@dataclass(frozen=True)
class DataConfig(TrainAugmentation):
    """Where the Cityscapes-format data lives and how training crops are made.

    The augmentation fields (``crop_size``, ``scale_min`` ... ``blur_prob``) are those of
    :class:`training.transforms.TrainAugmentation`, which this section is: training passes it
    to the data set as its augmentation.
    """

    root: str = ""
    train_split: str = "train"
    val_split: str = "val"
    class_uniform_pct: float = 0.5
    class_uniform_tile: int = 1024
    class_uniform_all_tiles: bool = False
    """False: the authors' tiles, whole tiles of the leftmost tile column only; True: every tile."""
    edge_width: int = 2
    workers: int = 4
    val_max_images: int = 0

    def __post_init__(self) -> None:
        try:
            super().__post_init__()
        except ValueError as exc:
            raise ConfigError(f"data.{exc}") from None
        _require(
            0 <= self.class_uniform_pct <= 1,
            f"data.class_uniform_pct must be in [0, 1], got {self.class_uniform_pct}",
        )
        _require(self.class_uniform_tile > 0, "data.class_uniform_tile must be positive")
        _require(self.edge_width > 0, f"data.edge_width must be positive, got {self.edge_width}")
        _require(self.workers >= 0, f"data.workers must be >= 0, got {self.workers}")
        _require(self.val_max_images >= 0, "data.val_max_images must be >= 0 (0 = all)")


@dataclass(frozen=True)
class ModelConfig:
    """Which network to train and how to initialise it."""

    arch: str = "bialign_dfnet2"
    gate: str = "simple"
    backbone_weights: str = ""
    """The ImageNet DFNet file to start from; ``none`` starts from random weights on purpose."""
    backbone_trust_source: bool = False
    """Read ``backbone_weights`` with full unpickling (files holding numpy scalars); trusted files only."""
    init_weights: str = ""
    """A bialign_ros checkpoint of the same arch to fine-tune from (all heads; wins over backbone_weights)."""
    sync_bn: bool = True
    sync_bn_in_blocks: bool = False
    """With ``sync_bn``, also sync the two BNs inside each backbone residual block (the authors don't)."""


@dataclass(frozen=True)
class LossConfig:
    """Weights and thresholds of the edge-guided hard pixel mining loss."""

    ohem_thresh: float = 0.7
    ohem_min_kept: int = 10000
    aux_weight: float = 0.3
    edge_weight: float = 25.0
    edge_bce_on_probabilities: bool = True
    """The authors' double sigmoid: BCE-with-logits applied to the sigmoided edge output."""
    edge_ohem_weight: float = 1.0
    edge_ohem_threshold: float = 0.8
    edge_ohem_min_kept: int = 5000

    def __post_init__(self) -> None:
        _require(0 < self.ohem_thresh <= 1, f"loss.ohem_thresh must be in (0, 1], got {self.ohem_thresh}")
        _require(
            self.ohem_min_kept >= 0 and self.edge_ohem_min_kept >= 0, "loss min_kept values must be >= 0"
        )
        _require(
            0 <= self.edge_ohem_threshold < 1,
            f"loss.edge_ohem_threshold must be in [0, 1), got {self.edge_ohem_threshold}",
        )
        for name in ("aux_weight", "edge_weight", "edge_ohem_weight"):
            _require(getattr(self, name) >= 0, f"loss.{name} must be >= 0")


@dataclass(frozen=True)
class OptimConfig:
    """SGD with poly decay; ``batch_size`` is global (all processes, all accumulation steps).

    ``optimizer: adamw`` (``momentum`` unused) is for short runs from scratch such as the
    synthetic demo; the Cityscapes recipe is SGD.
    """

    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    poly_power: float = 0.9
    iterations: int = 92500
    batch_size: int = 16
    batch_per_device: int = 2
    amp: str = "off"

    def __post_init__(self) -> None:
        _require(
            self.optimizer in OPTIMIZERS,
            f"optim.optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}",
        )
        _require(self.lr > 0, f"optim.lr must be positive, got {self.lr}")
        _require(self.iterations > 0, f"optim.iterations must be positive, got {self.iterations}")
        _require(
            self.batch_per_device > 0 and self.batch_size % self.batch_per_device == 0,
            f"optim.batch_size ({self.batch_size}) must be a positive multiple of "
            f"optim.batch_per_device ({self.batch_per_device})",
        )
        _require(self.amp in AMP_MODES, f"optim.amp must be one of {AMP_MODES}, got {self.amp!r}")


@dataclass(frozen=True)
class EvalConfig:
    """The evaluation protocol of in-training validation and of ``training.evaluate``.

    The default is the authors' evaluation script: the whole image at scale 1.0, and the
    logits of the image and of its mirror image averaged before the argmax.
    """

    flip: bool = True
    scales: tuple[float, ...] = (1.0,)
    average: str = "logits"

    def __post_init__(self) -> None:
        _require(bool(self.scales) and all(s > 0 for s in self.scales),
                 f"eval.scales must be positive numbers, got {list(self.scales)}")
        _require(self.average in EVAL_AVERAGES,
                 f"eval.average must be one of {EVAL_AVERAGES}, got {self.average!r}")


@dataclass(frozen=True)
class TrainConfig:
    """One training run: data, model, loss, optimiser and bookkeeping."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    out_dir: str = "runs/cityscapes_bialign_dfnet2"
    seed: int = 0
    device: str = "auto"
    log_every: int = 20
    val_every: int = 1850
    ckpt_every: int = 500

    def __post_init__(self) -> None:
        _require(self.device in DEVICES, f"device must be one of {DEVICES}, got {self.device!r}")
        for name in ("log_every", "val_every", "ckpt_every"):
            _require(getattr(self, name) >= 0, f"{name} must be >= 0 (0 disables)")


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read a YAML config (defaults when ``path`` is None) and apply ``section.field=value`` overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        loaded = yaml.safe_load(path.read_text())
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path} must hold a mapping of sections, got {type(loaded).__name__}")
        data = loaded or {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} is not of the form section.field=value")
        _set_path(data, key.strip().split("."), yaml.safe_load(raw))
    return config_from_dict(data)


def config_from_dict(data: Mapping[str, Any]) -> TrainConfig:
    """Build a :class:`TrainConfig` from nested plain containers, rejecting unknown keys."""
    return _build(TrainConfig, data, "")


def config_to_dict(config: TrainConfig) -> dict[str, Any]:
    """Nested plain-container form (tuples become lists), as stored in checkpoints and YAML."""
    return _plain(dataclasses.asdict(config))


def _build(cls: type, data: Mapping[str, Any], prefix: str) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown config keys {[prefix + k for k in unknown]}; valid keys: {sorted(names)}")
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, value, f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(value, hint, prefix + name)
    return cls(**kwargs)


def _coerce(value: Any, hint: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    if origin is tuple:
        (item_type, *_rest) = typing.get_args(hint)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        return tuple(_coerce(v, item_type, key) for v in value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, str):  # YAML 1.1 reads exponents without a dot (1e-4) as strings
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if value is None:
            return ""
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported config type {hint}")


def _set_path(data: dict[str, Any], keys: list[str], value: Any) -> None:
    for key in keys[:-1]:
        child = data.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"cannot override inside {key!r}: it is not a section")
        data = child
    data[keys[-1]] = value


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)
