"""The visual report of a bag evaluation: PNG plots and one self-contained HTML page.

Plots are drawn with matplotlib's Agg backend (files only, no display); the IoU chart and the
confusion matrix are :mod:`bialign_ros.plots`'s, which the training tools draw too.
``report.html`` embeds every plot as a base64 ``data:`` URI, so the single file can be mailed
or archived.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from bialign_ros.plots import plot_confusion_matrix, plot_per_class_iou, plot_reliability, save_figure

PLOT_FILES = {
    "per_class_iou": "per_class_iou.png",
    "confusion_matrix": "confusion_matrix.png",
    "latency": "latency_histogram.png",
    "reliability": "reliability_diagram.png",
    "samples": "samples.png",
}
REPORT_FILE = "report.html"
LATENCY_LABELS = {"n": "frames", "mean_ms": "mean (ms)", "p50_ms": "p50 (ms)", "p90_ms": "p90 (ms)",
                  "p99_ms": "p99 (ms)", "fps": "frames per second"}


@dataclass
class ReportSample:
    """One frame shown in the report's grid."""

    stamp_ns: int
    overlay: np.ndarray
    """H x W x 3 uint8 RGB: class colours over the frame."""
    edges: np.ndarray
    """H x W uint8 edge map."""
    truth: np.ndarray | None
    """H x W x 3 uint8 RGB class colours of the ground truth, or None."""


def plot_latency_histogram(latencies_ms: Sequence[float], path: str | Path) -> Path:
    """Histogram of per-frame inference latency with its mean, p50 and p99."""
    ms = np.asarray(latencies_ms, dtype=np.float64)
    fig, ax = plt.subplots(figsize=(6.0, 3.5))
    ax.hist(ms, bins=min(50, max(5, ms.size // 2)), color="tab:gray", edgecolor="black", linewidth=0.5)
    for value, label, style in ((ms.mean(), "mean", "-"), (np.percentile(ms, 50), "p50", "--"),
                                (np.percentile(ms, 99), "p99", ":")):
        ax.axvline(value, color="tab:red", linestyle=style, label=f"{label} {value:.1f} ms")
    ax.set_xlabel("latency per frame (ms)")
    ax.set_ylabel("frames")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def plot_samples(samples: Sequence[ReportSample], path: str | Path) -> Path:
    """Grid of sample frames: overlay, edge map and (when present) the ground truth."""
    columns = 3 if any(s.truth is not None for s in samples) else 2
    h, w = samples[0].overlay.shape[:2]
    cell = 3.2
    fig, axes = plt.subplots(len(samples), columns, squeeze=False,
                             figsize=(cell * columns, cell * h / w * len(samples) + 0.4 * len(samples)))
    for row, sample in zip(axes, samples):
        stamp = f"{sample.stamp_ns / 1e9:.3f} s"
        panels = [(sample.overlay, f"overlay {stamp}", None), (sample.edges, "edge map", "gray")]
        if columns == 3:
            panels.append((sample.truth, "ground truth", None))
        for ax, (image, title, cmap) in zip(row, panels):
            ax.axis("off")
            if image is None:
                ax.text(0.5, 0.5, "no ground truth", ha="center", va="center", transform=ax.transAxes)
                continue
            ax.imshow(image, cmap=cmap, vmin=0, vmax=255, interpolation="nearest")
            ax.set_title(title, fontsize=8)
    return save_figure(fig, path)


def write_report(out_dir: str | Path, metrics: Mapping[str, Any], class_names: Sequence[str],
                 class_colors: Sequence[Sequence[int]], matrix: np.ndarray | None,
                 latencies_ms: Sequence[float], samples: Sequence[ReportSample]) -> dict[str, Path]:
    """Write the PNG plots and ``report.html`` into ``out_dir``; returns their paths by name.

    The IoU chart and confusion matrix need ``matrix`` (ground truth); the latency histogram
    needs latencies and the grid needs samples. Missing parts are left out and the page says why.
    """
    out_dir = Path(out_dir)
    paths: dict[str, Path] = {}
    if matrix is not None and metrics.get("per_class_iou"):
        paths["per_class_iou"] = plot_per_class_iou(metrics["per_class_iou"], out_dir / PLOT_FILES["per_class_iou"],
                                                    class_colors)
        paths["confusion_matrix"] = plot_confusion_matrix(matrix, class_names,
                                                          out_dir / PLOT_FILES["confusion_matrix"])
    if metrics.get("confidence_calibration", {}).get("pixels"):
        paths["reliability"] = plot_reliability(metrics["confidence_calibration"], out_dir / PLOT_FILES["reliability"])
    if len(latencies_ms):
        paths["latency"] = plot_latency_histogram(latencies_ms, out_dir / PLOT_FILES["latency"])
    if samples:
        paths["samples"] = plot_samples(samples, out_dir / PLOT_FILES["samples"])
    report = out_dir / REPORT_FILE
    page = render_html(metrics, {name: p.read_bytes() for name, p in paths.items()})
    report.write_text(page, encoding="utf-8")
    paths["report"] = report
    return paths


def data_uri(png: bytes) -> str:
    """A ``data:image/png;base64,...`` URI of PNG bytes."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


_STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5em 0; } td, th { padding: 0.2em 0.8em; text-align: left; }
tr:nth-child(even) { background: #f4f4f4; } .warn { color: #a00; font-weight: bold; }
img { max-width: 100%; border: 1px solid #ddd; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
"""


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100.0 * value:.2f}%"


def _rows(pairs: Sequence[tuple[str, Any]]) -> str:
    return "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in pairs)


def _image(images: Mapping[str, bytes], name: str, alt: str) -> str:
    return f'<p><img src="{data_uri(images[name])}" alt="{html.escape(alt)}"></p>' if name in images else ""


def render_html(metrics: Mapping[str, Any], images: Mapping[str, bytes]) -> str:
    """The report page: summary, IoU, confusion matrix, boundaries, latency and samples."""
    frames = metrics.get("frames", {})
    model = metrics.get("model", {})
    latency = metrics.get("latency") or {}
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>bialign_ros bag evaluation</title>"
             f"<style>{_STYLE}</style></head><body>", "<h1>Bag evaluation</h1>"]
    if metrics.get("bag_error"):
        parts.append(f"<p class='warn'>Incomplete bag: {html.escape(metrics['bag_error'])}. "
                     "Everything readable was evaluated.</p>")
    if model.get("untrained"):
        parts.append("<p class='warn'>The weights are UNTRAINED: labels and edges are noise.</p>")
    summary = [("bag", metrics.get("bag")), ("image topic", metrics.get("image_topic")),
               ("ground-truth topic", metrics.get("gt_topic") or "none"), ("weights", metrics.get("weights")),
               ("model", f"{model.get('arch')} ({model.get('backend')}) on {model.get('device')}, "
                         f"{model.get('precision')}, input scale {model.get('input_scale')}"),
               ("frames processed", frames.get("processed")),
               ("frames with ground truth", frames.get("with_ground_truth")),
               ("frames without ground truth", frames.get("without_ground_truth")),
               ("ground truth without a frame", frames.get("ground_truth_without_frame")),
               ("frames that could not be decoded", frames.get("undecodable"))]
    if "miou" in metrics:
        summary += [("mIoU", _pct(metrics["miou"])), ("pixel accuracy", _pct(metrics.get("pixel_accuracy")))]
    parts.append(f"<table>{_rows(summary)}</table>")

    parts.append("<h2>Per-class IoU</h2>")
    if metrics.get("per_class_iou"):
        parts.append(_image(images, "per_class_iou", "per-class IoU bar chart"))
        parts.append(f"<table>{_rows([(k, _pct(v)) for k, v in metrics['per_class_iou'].items()])}</table>")
        parts.append("<h2>Confusion matrix</h2>" + _image(images, "confusion_matrix", "confusion matrix"))
    else:
        parts.append("<p>No ground truth: IoU and confusion matrix are not computed.</p>")

    boundary = metrics.get("boundary")
    if boundary:
        parts.append(f"<h2>Boundary F-score (tolerance {boundary['tolerance_px']:g} px)</h2>")
        rows = "".join(
            f"<tr><th>{name}</th>" + "".join(f"<td class='num'>{_pct(b[k])}</td>"
                                             for k in ("f_score", "precision", "recall")) + "</tr>"
            for name, b in (("labels", boundary["labels"]),
                            (f"edge map (p &ge; {boundary['edge_threshold']:g})", boundary["edges"])))
        parts.append(f"<table><tr><th></th><th>F</th><th>precision</th><th>recall</th></tr>{rows}</table>")

    calibration = metrics.get("confidence_calibration")
    if calibration:
        free = metrics["free_space"]
        rows = [(f"expected calibration error ({calibration['bins']} bins)", _pct(calibration["ece"])),
                (f"free-space IoU ({', '.join(free['classes'])})", _pct(free["iou"]))]
        parts.append(f"<h2>Confidence and free space</h2><table>{_rows(rows)}</table>")
        parts.append(_image(images, "reliability", "reliability diagram of the confidence"))

    parts.append("<h2>Latency</h2>")
    if latency:
        parts.append(_image(images, "latency", "latency histogram"))
        rows = [(LATENCY_LABELS.get(k, k), f"{v:.2f}" if isinstance(v, float) else v)
                for k, v in latency.items()]
        parts.append(f"<table>{_rows(rows)}</table>")
    hardware = metrics.get("hardware")
    if hardware:
        parts.append(f"<table>{_rows(list(hardware.items()))}</table>")

    parts.append("<h2>Samples</h2>")
    samples = _image(images, "samples", "sample overlays and edge maps")
    parts.append(samples or "<p>No frames were processed.</p>")
    parts.append("</body></html>")
    return "\n".join(parts)
