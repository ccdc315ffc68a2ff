"""The console scripts end to end, as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from bialign_ros.segmenter import Segmenter
from bialign_ros.weights import untrained_checkpoint

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return untrained_checkpoint(tmp_path_factory.mktemp("w") / "untrained.pt", seed=7)


def _run(*cmd, **kw):
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=300, **kw)


def test_segment_writes_labels_edges_overlay_at_image_size(tmp_path, weights):
    rng = np.random.default_rng(0)
    images = []
    for name, (h, w) in {"odd": (75, 131), "wide": (96, 200)}.items():
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        cv2.imwrite(str(tmp_path / f"{name}.png"), img)
        images.append((tmp_path / f"{name}.png", img[:, :, ::-1]))
    out = tmp_path / "out"
    proc = _run(BIN / "bialign_segment", "--weights", weights, "--device", "cpu", "--out-dir", out,
                *[p for p, _ in images])
    assert proc.returncode == 0, proc.stderr
    seg = Segmenter.from_checkpoint(weights, device="cpu", warmup=False)
    for path, rgb in images:
        labels = cv2.imread(str(out / f"{path.stem}_labels.png"), cv2.IMREAD_UNCHANGED)
        edges = cv2.imread(str(out / f"{path.stem}_edges.png"), cv2.IMREAD_UNCHANGED)
        overlay = cv2.imread(str(out / f"{path.stem}_overlay.png"), cv2.IMREAD_UNCHANGED)
        assert labels.shape == edges.shape == rgb.shape[:2]
        assert labels.dtype == edges.dtype == np.uint8 and overlay.shape == rgb.shape
        ref = seg.segment(np.ascontiguousarray(rgb))
        assert (labels == ref.labels).mean() > 0.999
        assert np.abs(edges.astype(int) - ref.edges_u8()).max() <= 1


def test_segment_reports_unreadable_image_and_missing_weights(tmp_path, weights):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"nope")
    proc = _run(BIN / "bialign_segment", "--weights", weights, "--out-dir", tmp_path / "o", bad)
    assert proc.returncode == 1 and "cannot read image" in proc.stderr
    proc = _run(BIN / "bialign_segment", "--weights", tmp_path / "none.pt", "--out-dir", tmp_path / "o", bad)
    assert proc.returncode == 2 and "not found" in proc.stderr


def test_benchmark_prints_table_and_json(weights):
    proc = _run(BIN / "bialign_benchmark", "--weights", weights, "--height", 64, "--width", 128, "--iters", 2,
                "--warmup", 1, "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout.strip().splitlines()[-1])
    assert record["height"] == 64 and record["width"] == 128
    for stage in ("model", "segmenter"):
        assert record[stage]["n"] == 2 and record[stage]["fps"] > 0
        assert record[stage]["p50_ms"] <= record[stage]["p99_ms"]
    assert "segmenter end to end" in proc.stdout


def test_convert_help():
    proc = _run(BIN / "bialign_convert", "--help")
    assert proc.returncode == 0 and "--arch" in proc.stdout


def test_demo_without_weights_warns_and_writes_overlays(tmp_path):
    proc = _run(sys.executable, "-m", "bialign_ros.demo", "--frames", 1, "--height", 64, "--width", 128,
                "--out-dir", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "UNTRAINED" in proc.stdout
    overlay = cv2.imread(str(tmp_path / "segment/synthetic_000_overlay.png"))
    assert overlay.shape == (64, 128, 3)
