"""python -m training.demo_weights: synthetic data, training, held-out evaluation, cached checkpoint."""

import json

from bialign_ros.checkpoint import load_checkpoint
from training import demo_weights


def test_demo_weights_pipeline_on_a_tiny_budget(tmp_path, capsys):
    out = tmp_path / "weights" / "demo.pt"
    args = ["--out", str(out), "--work-dir", str(tmp_path / "work"),
            "--train-images", "4", "--val-images", "2", "--height", "64", "--width", "128",
            "--input-scale", "0.5", "--no-progress",
            "--set", "optim.iterations=2", "--set", "optim.batch_size=2", "--set", "optim.batch_per_device=2",
            "--set", "data.crop_size=64", "--set", "data.workers=0", "--set", "val_every=0"]
    assert demo_weights.main(args) == 0
    state, meta, extra = load_checkpoint(out)
    assert extra == {}  # weights only, no optimiser state
    assert meta.training["step"] == 2 and meta.training["input_scale"] == 0.5
    assert meta.training["config"]["optim"]["optimizer"] == "adamw"
    metrics = json.loads((tmp_path / "work" / "heldout_eval" / "metrics.json").read_text())
    assert metrics["scales"] == [0.5] and metrics["num_images"] == 2
    assert meta.training["heldout_miou"] == metrics["miou"]
    assert f"demo weights: {out}" in capsys.readouterr().out
    # A second run reuses the rendered data and the finished run.
    marker = (tmp_path / "work" / "data" / "synthetic.json").stat().st_mtime_ns
    assert demo_weights.main(args) == 0
    assert (tmp_path / "work" / "data" / "synthetic.json").stat().st_mtime_ns == marker
