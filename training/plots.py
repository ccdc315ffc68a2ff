"""Figures of an evaluation or a run: per-class IoU bars, confusion matrix, training curves.

The IoU and confusion-matrix figures are the runtime's (:mod:`bialign_ros.plots`, also drawn by
the bag report), importable from here as before.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from bialign_ros.plots import plot_confusion_matrix, plot_per_class_iou, save_figure
from training.scalars import read_scalars

__all__ = ["plot_confusion_matrix", "plot_per_class_iou", "plot_training_curves"]


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
    return save_figure(fig, path)
