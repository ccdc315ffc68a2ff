"""Figures of a segmentation evaluation: per-class IoU bars, the confusion matrix, and the
reliability diagram of the confidence.

One implementation for the bag report (:mod:`bialign_ros.bags.report`) and the training tools
(:mod:`training.plots`, ``training.evaluate``). The mIoU line is the mean of the defined IoUs,
as :func:`bialign_ros.metrics.mean_iou` defines it: a class absent from both the ground truth
and the predictions has no IoU and does not count. Drawn with matplotlib's Agg backend (files
only, never a display).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

Color = Sequence[int]
"""An RGB colour, 0-255 per channel."""


def per_class_iou_figure(per_class_iou: Mapping[str, float | None],
                         colors: Sequence[Color] | None = None) -> plt.Figure:
    """Bar chart of each class's IoU (in %) with the mIoU as a dashed line.

    ``per_class_iou`` maps class names to IoUs in [0, 1], ``None`` or NaN where undefined (those
    bars are marked n/a), as :func:`bialign_ros.metrics.summarize` returns them. ``colors`` are
    the class colours of the bars (one colour for all when None).
    """
    names = list(per_class_iou)
    values = np.array([np.nan if v is None else 100.0 * v for v in per_class_iou.values()], dtype=np.float64)
    bar_colors = "tab:blue" if colors is None else [np.asarray(c) / 255.0 for c in colors]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * len(names)), 4.0))
    ax.bar(range(len(names)), np.nan_to_num(values), color=bar_colors, edgecolor="black", linewidth=0.5)
    for i, v in enumerate(values):
        ax.text(i, 1 if np.isnan(v) else v + 1, "n/a" if np.isnan(v) else f"{v:.0f}", ha="center",
                va="bottom", fontsize=7)
    if np.isfinite(values).any():
        mean = float(np.nanmean(values))
        ax.axhline(mean, color="black", linestyle="--", linewidth=1, label=f"mIoU {mean:.1f}")
        ax.legend(loc="upper right")
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
    ax.set_ylim(0, 105)
    ax.set_ylabel("IoU (%)")
    return fig


def confusion_matrix_figure(matrix: np.ndarray, class_names: Sequence[str]) -> plt.Figure:
    """Confusion matrix image, each ground-truth row normalised to sum to 1."""
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
    return fig


def plot_per_class_iou(per_class_iou: Mapping[str, float | None], path: str | Path,
                       colors: Sequence[Color] | None = None) -> Path:
    """Write :func:`per_class_iou_figure` as a PNG to ``path``; returns the path."""
    return save_figure(per_class_iou_figure(per_class_iou, colors), path)


def plot_confusion_matrix(matrix: np.ndarray, class_names: Sequence[str], path: str | Path) -> Path:
    """Write :func:`confusion_matrix_figure` as a PNG to ``path``; returns the path."""
    return save_figure(confusion_matrix_figure(matrix, class_names), path)


def plot_reliability(calibration: Mapping, path: str | Path) -> Path:
    """Reliability diagram of a :meth:`bialign_ros.calibration.ConfidenceCalibration.summary`:
    accuracy per confidence bin against the diagonal of perfect calibration, pixels per bin below."""
    bins = calibration["reliability"]
    low = np.array([b["low"] for b in bins])
    width = np.array([b["high"] - b["low"] for b in bins])
    accuracy = np.array([np.nan if b["accuracy"] is None else b["accuracy"] for b in bins])
    pixels = np.array([b["pixels"] for b in bins])
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(5.0, 5.5), sharex=True, height_ratios=(3, 1))
    top.bar(low, np.nan_to_num(accuracy), width=width, align="edge", color="tab:blue", edgecolor="black",
            linewidth=0.5, label="accuracy")
    top.plot([0, 1], [0, 1], "--", color="tab:red", label="perfect calibration")
    ece = calibration.get("ece")
    top.set_title(f"confidence calibration (ECE {100 * ece:.2f}%)" if ece is not None else "confidence calibration")
    top.set_ylabel("accuracy")
    top.set_ylim(0, 1)
    top.legend(fontsize=8, loc="upper left")
    bottom.bar(low, pixels, width=width, align="edge", color="tab:gray", edgecolor="black", linewidth=0.5)
    bottom.set_yscale("log" if pixels.max(initial=0) > 0 else "linear")
    bottom.set_xlabel("confidence (softmax probability of the label)")
    bottom.set_ylabel("pixels")
    bottom.set_xlim(0, 1)
    return save_figure(fig, path)


def save_figure(fig: plt.Figure, path: str | Path) -> Path:
    """Write ``fig`` as a PNG (parent folders created) and close it; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
