"""Scalar logging of a training run: ``scalars.jsonl`` always, TensorBoard when installed.

``scalars.jsonl`` holds one JSON object per logging step (``{"step": 20, "loss/main": ...}``);
it is what :mod:`training.plots` reads. TensorBoard event files are written beside it when the
``tensorboard`` package is importable (``torch.utils.tensorboard`` needs it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class ScalarWriter:
    """Append scalars per step; only the main process should create one."""

    def __init__(self, out_dir: str | Path, tensorboard: bool = True) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.jsonl_path = self.out_dir / "scalars.jsonl"
        self._tb: Any = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                self._tb = None
            else:
                self._tb = SummaryWriter(log_dir=str(self.out_dir / "tensorboard"))

    @property
    def has_tensorboard(self) -> bool:
        """Whether TensorBoard event files are being written."""
        return self._tb is not None

    def add(self, step: int, scalars: dict[str, float]) -> None:
        """Record ``scalars`` (tag -> value) at ``step``."""
        with self.jsonl_path.open("a") as f:
            f.write(json.dumps({"step": step, **{k: float(v) for k, v in scalars.items()}}) + "\n")
        if self._tb is not None:
            for tag, value in scalars.items():
                self._tb.add_scalar(tag, float(value), step)

    def close(self) -> None:
        """Flush and close the TensorBoard writer."""
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def read_scalars(path: str | Path) -> list[dict[str, float]]:
    """All records of a ``scalars.jsonl`` file, in order."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
