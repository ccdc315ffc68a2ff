"""Figures of an evaluation or a run: per-class IoU bars, confusion matrix, training curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from training.scalars import read_scalars  # noqa: E402


def plot_per_class_iou(per_class_iou: Mapping[str, float | None], path: str | Path) -> Path:
    """Bar chart of the IoU of every class (classes without an IoU are marked "n/a")."""
    names = list(per_class_iou)
    values = [np.nan if v is None else 100.0 * v for v in per_class_iou.values()]
    defined = [v for v in values if not np.isnan(v)]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * len(names)), 4.0))
    ax.bar(range(len(names)), np.nan_to_num(values), color="tab:blue")
    for i, v in enumerate(values):
        ax.text(i, 1 if np.isnan(v) else v + 1, "n/a" if np.isnan(v) else f"{v:.0f}",
                ha="center", va="bottom", fontsize=7)
    if defined:
        ax.axhline(np.mean(defined), color="tab:red", linestyle="--", label=f"mIoU {np.mean(defined):.1f}")
        ax.legend(loc="upper right")
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
    ax.set_ylim(0, 105)
    ax.set_ylabel("IoU (%)")
    return _save(fig, path)


def plot_confusion_matrix(matrix: np.ndarray, class_names: Sequence[str], path: str | Path) -> Path:
    """Confusion matrix with every ground-truth row normalised to sum to 1."""
    matrix = np.asarray(matrix, dtype=np.float64)
    rows = matrix.sum(axis=1, keepdims=True)
    norm = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    n = len(class_names)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.4 * n + 2), max(4.0, 0.4 * n + 1)))
    im = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of ground-truth pixels")
    ax.set_xticks(range(n), class_names, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(n), class_names, fontsize=7)
    ax.set_xlabel("prediction")
    ax.set_ylabel("ground truth")
    return _save(fig, path)


def plot_training_curves(scalars_jsonl: str | Path, path: str | Path) -> Path:
    """Loss terms and learning rate over steps, and validation mIoU when present."""
    by_step: dict[int, dict[str, float]] = {}
    for record in read_scalars(scalars_jsonl):
        by_step.setdefault(int(record["step"]), {}).update(record)  # a resumed run repeats steps
    steps = sorted(by_step)
    tags = sorted({t for r in by_step.values() for t in r if t != "step"})
    panels = [
        ("loss", [t for t in tags if t.startswith("loss/")]),
        ("learning rate", [t for t in tags if t == "lr"]),
        ("validation mIoU", [t for t in tags if t.startswith("val/")]),
    ]
    panels = [p for p in panels if p[1]]
    fig, axes = plt.subplots(len(panels), 1, figsize=(7, 2.6 * len(panels)), sharex=True, squeeze=False)
    for ax, (title, panel_tags) in zip(axes[:, 0], panels):
        for tag in panel_tags:
            xs = [s for s in steps if tag in by_step[s]]
            ax.plot(xs, [by_step[s][tag] for s in xs], marker="." if len(xs) < 30 else None, label=tag)
        ax.set_ylabel(title)
        ax.legend(fontsize=7)
    axes[-1, 0].set_xlabel("step")
    return _save(fig, path)


def _save(fig: plt.Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
