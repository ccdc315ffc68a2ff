"""The self-describing checkpoint format of bialign_ros.

A checkpoint is a ``.pt`` file holding a plain dict that ``torch.load(weights_only=True)``
can read: the weights plus everything needed to use them (architecture, class table,
normalisation, channel order and training metadata). The node and the CLIs need only its path.
:class:`ModelMeta` is also the metadata of exported graphs, so this module imports torch only
inside the functions that read and write ``.pt`` files.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bialign_ros.classes import CITYSCAPES_COLORS, CITYSCAPES_NAMES, IMAGENET_MEAN, IMAGENET_STD

if TYPE_CHECKING:
    import torch

FORMAT_NAME = "bialign_ros.checkpoint"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable or not in the expected layout."""


@dataclass(frozen=True)
class ModelMeta:
    """Everything besides the weights that is needed to run a model.

    The class table (``class_names``, ``class_colors``; train ID i is class i) is the model's own:
    the Cityscapes table is only the default. Creating a ModelMeta checks it (CheckpointError).
    """

    arch: str = "bialign_dfnet2"
    gate: str = "simple"
    class_names: tuple[str, ...] = CITYSCAPES_NAMES
    class_colors: tuple[tuple[int, int, int], ...] = CITYSCAPES_COLORS
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    channel_order: str = "rgb"
    ignore_index: int = 255
    training: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names, colors = self.class_names, self.class_colors
        if len(colors) != len(names):
            raise CheckpointError(f"{len(names)} class names but {len(colors)} class colours")
        # Labels travel as mono8, and the ignore value is no class: train IDs 0..n-1 < ignore_index <= 255.
        if not 0 < len(names) <= 255:
            raise CheckpointError(f"a model has 1 to 255 classes (its labels are mono8), got {len(names)}")
        if len(set(names)) != len(names) or not all(isinstance(n, str) and n for n in names):
            raise CheckpointError(f"class names must be distinct non-empty strings, got {list(names)}")
        if not all(len(c) == 3 and all(0 <= v <= 255 for v in c) for c in colors):
            raise CheckpointError(f"class colours must be RGB triples in 0..255, got {[list(c) for c in colors]}")
        if not len(names) <= self.ignore_index <= 255:
            raise CheckpointError(f"ignore_index must be in {len(names)}..255 (above every train ID of the "
                                  f"{len(names)} classes), got {self.ignore_index}")
        if self.channel_order not in ("rgb", "bgr"):
            raise CheckpointError(f"channel_order must be 'rgb' or 'bgr', got {self.channel_order!r}")

    @property
    def num_classes(self) -> int:
        """Number of output classes of the model."""
        return len(self.class_names)

    def to_dict(self) -> dict[str, Any]:
        """Plain-container form stored in the checkpoint file."""
        d = asdict(self)
        d["class_names"] = list(self.class_names)
        d["class_colors"] = [list(c) for c in self.class_colors]
        d["mean"] = list(self.mean)
        d["std"] = list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelMeta:
        """Inverse of :meth:`to_dict`; unknown keys are rejected with a clear message."""
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise CheckpointError(f"unknown model metadata fields: {sorted(unknown)}")
        d = dict(d)
        if "class_names" in d:
            d["class_names"] = tuple(d["class_names"])
        if "class_colors" in d:
            d["class_colors"] = tuple(tuple(int(v) for v in c) for c in d["class_colors"])
        for key in ("mean", "std"):
            if key in d:
                d[key] = tuple(float(v) for v in d[key])
        return cls(**d)


def save_checkpoint(
    path: str | Path,
    state_dict: dict[str, torch.Tensor],
    meta: ModelMeta,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write weights and metadata to ``path``; ``extra`` holds e.g. resume state for training."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "meta": meta.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
    }
    if extra:
        payload["extra"] = extra
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)  # atomic: a crash never leaves a half-written checkpoint
    return path


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], ModelMeta, dict[str, Any]]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Returns ``(state_dict, meta, extra)``. Raises :class:`CheckpointError` naming the file
    when it is missing, unreadable or in another layout (e.g. the authors' original files,
    which ``bialign_convert`` turns into this format).
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several unrelated types for bad files
        raise CheckpointError(f"cannot read weights file {path}: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_NAME:
        raise CheckpointError(
            f"{path} is not a bialign_ros checkpoint; convert the authors' files with "
            f"'bialign_convert {path} OUT.pt'"
        )
    if payload.get("version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {payload['version']}; "
            f"this bialign_ros reads up to {FORMAT_VERSION}"
        )
    meta = ModelMeta.from_dict(payload["meta"])
    return payload["state_dict"], meta, payload.get("extra", {})
