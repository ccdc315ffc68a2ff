"""The evaluation report: PNG plots, a self-contained HTML page, and that page in a real browser."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

import bialign_ros.bags.report as report
import training.evaluate
import training.plots
from bialign_ros import plots
from bialign_ros.bags.report import PLOT_FILES, ReportSample, write_report
from bialign_ros.calibration import ConfidenceCalibration
from bialign_ros.classes import CITYSCAPES_COLORS, CITYSCAPES_NAMES
from bialign_ros.metrics import mean_iou, summarize

CHROMIUM = Path("/usr/bin/chromium")
ROAD = CITYSCAPES_COLORS[0]


def make_metrics(with_truth: bool = True) -> tuple[dict, np.ndarray | None]:
    rng = np.random.default_rng(0)
    n = len(CITYSCAPES_NAMES)
    matrix = np.diag(rng.integers(500, 1000, n)) + rng.integers(0, 50, (n, n)) if with_truth else None
    metrics: dict = {"bag": "/data/drive.mcap", "image_topic": "/camera/image", "gt_topic": "/camera/labels",
                     "weights": "model.pt", "frames": {"processed": 12, "with_ground_truth": 10},
                     "model": {"arch": "bialign_dfnet2", "untrained": False, "device": "cpu",
                               "precision": "fp32", "input_scale": 1.0},
                     "latency": {"n": 12, "mean_ms": 40.0, "p50_ms": 39.0, "p90_ms": 45.0, "p99_ms": 50.0,
                                 "fps": 25.0},
                     "complete": True, "bag_error": None}
    if with_truth:
        iou = np.diag(matrix) / (matrix.sum(0) + matrix.sum(1) - np.diag(matrix))
        metrics.update(miou=float(iou.mean()), pixel_accuracy=0.9,
                       per_class_iou={name: float(v) for name, v in zip(CITYSCAPES_NAMES, iou)},
                       boundary={"tolerance_px": 3.0, "edge_threshold": 0.5,
                                 "labels": {"f_score": 0.7, "precision": 0.6, "recall": 0.8},
                                 "edges": {"f_score": 0.5, "precision": 0.4, "recall": 0.7}},
                       free_space={"iou": 0.8, "classes": ["road"], "min_confidence": 0.5})
        calibration = ConfidenceCalibration()
        conf = rng.uniform(0, 1, (50, 50)).astype(np.float32)
        calibration.update(np.zeros((50, 50), np.uint8), (rng.uniform(0, 1, conf.shape) > conf).astype(np.uint8),
                           conf)
        metrics["confidence_calibration"] = calibration.summary()
    return metrics, matrix


def make_samples(count: int, with_truth: bool = True) -> list[ReportSample]:
    rng = np.random.default_rng(1)
    samples = []
    for i in range(count):
        overlay = np.empty((60, 100, 3), np.uint8)
        overlay[:] = ROAD
        edges = (rng.random((60, 100)) > 0.9).astype(np.uint8) * 255
        truth = np.full((60, 100, 3), 128, np.uint8) if with_truth else None
        samples.append(ReportSample(1_700_000_000_000_000_000 + i, overlay, edges, truth))
    return samples


def write(out: Path, with_truth: bool = True) -> dict[str, Path]:
    metrics, matrix = make_metrics(with_truth)
    return write_report(out, metrics, CITYSCAPES_NAMES, CITYSCAPES_COLORS, matrix,
                        np.random.default_rng(2).normal(40, 3, 50), make_samples(3, with_truth))


def test_report_writes_every_plot_and_embeds_each_one_in_the_html(tmp_path):
    paths = write(tmp_path)
    assert set(paths) == {*PLOT_FILES, "report"}
    for name, file in PLOT_FILES.items():
        image = cv2.imread(str(tmp_path / file))
        assert image is not None and image.shape[0] > 100 and image.shape[1] > 100, name
    html = (tmp_path / "report.html").read_text()
    embedded = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert sorted(base64.b64decode(e) for e in embedded) == sorted((tmp_path / f).read_bytes()
                                                                   for f in PLOT_FILES.values())
    # nothing is loaded from elsewhere
    assert not re.search(r'(src|href)="(?!data:)', html)
    assert "mIoU" in html and "road" in html and "Boundary F-score (tolerance 3 px)" in html
    assert "expected calibration error (15 bins)" in html and "free-space IoU (road)" in html


def test_report_without_ground_truth_says_so_and_has_no_iou_plots(tmp_path):
    paths = write(tmp_path, with_truth=False)
    assert set(paths) == {"latency", "samples", "report"}
    html = paths["report"].read_text()
    assert "No ground truth" in html and html.count("data:image/png;base64,") == 2
    assert not (tmp_path / PLOT_FILES["per_class_iou"]).exists()


def test_report_flags_untrained_weights_and_an_incomplete_bag(tmp_path):
    metrics, matrix = make_metrics()
    metrics["model"]["untrained"] = True
    metrics["bag_error"] = "/data/drive/drive.mcap is truncated"
    paths = write_report(tmp_path, metrics, CITYSCAPES_NAMES, CITYSCAPES_COLORS, matrix, [], [])
    html = paths["report"].read_text()
    assert "UNTRAINED" in html and "Incomplete bag: /data/drive/drive.mcap is truncated" in html
    assert "No frames were processed" in html


def test_bag_report_and_training_draw_the_one_iou_and_confusion_plot():
    for module in (report, training.evaluate, training.plots):
        assert module.plot_per_class_iou is plots.plot_per_class_iou, module.__name__
        assert module.plot_confusion_matrix is plots.plot_confusion_matrix, module.__name__


def test_plotted_miou_is_the_metrics_miou_when_a_class_is_absent():
    # class 1 occurs neither in the ground truth nor in the predictions: no IoU, not in the mean
    matrix = np.array([[6, 0, 2], [0, 0, 0], [1, 0, 3]])
    summary = summarize(matrix, ["road", "sky", "car"])
    assert summary["per_class_iou"]["sky"] is None
    fig = plots.per_class_iou_figure(summary["per_class_iou"], CITYSCAPES_COLORS[:3])
    try:
        (line,) = fig.axes[0].get_lines()
        assert line.get_ydata()[0] == pytest.approx(100 * mean_iou(matrix))
        assert fig.axes[0].get_legend().get_texts()[0].get_text() == f"mIoU {100 * mean_iou(matrix):.1f}"
        assert "n/a" in [t.get_text() for t in fig.axes[0].texts]
    finally:
        plots.plt.close(fig)


@pytest.mark.skipif(not CHROMIUM.is_file(), reason="Chromium is not installed (Debian package 'chromium')")
def test_report_renders_its_embedded_images_in_headless_chromium(tmp_path):
    write(tmp_path / "report")
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(tmp_path / "report/report.html", alone)  # the page without the PNG files beside it
    shot = tmp_path / "shot.png"
    proc = subprocess.run([str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--window-size=1100,4000", f"--screenshot={shot}",
                           (alone / "report.html").as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and shot.is_file(), proc.stderr
    image = cv2.imread(str(shot))[:, :, ::-1]
    assert image.shape[:2] == (4000, 1100)
    # road-coloured pixels come only from the images: the IoU bar and the sample overlays
    road = np.all(image == np.array(ROAD, np.uint8), axis=2).sum()
    assert road > 20_000, road
