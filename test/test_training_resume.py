"""A training process killed mid-run resumes from its last checkpoint and ends where an uninterrupted
run ends."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from bialign_ros.checkpoint import CheckpointError, load_checkpoint
from training.scalars import read_scalars
from training.train import main

REPO = Path(__file__).resolve().parents[1]
ITERATIONS = 10


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    from bialign_ros.synthetic import write_cityscapes

    root = tmp_path_factory.mktemp("synthetic_resume")
    write_cityscapes(root, split="train", num_images=6, height=64, width=128, seed=1, progress=False)
    return root


def _command(data_root: Path, out_dir: Path, iterations: int = ITERATIONS) -> list[str]:
    return [
        sys.executable, "-m", "training.train", "--no-progress", "--data-root", str(data_root),
        "--out-dir", str(out_dir), "--device", "cpu", "--iterations", str(iterations),
        # 6 images, batch 4: one step per epoch with 2 images left over, so the run crosses
        # epoch boundaries, and the class-uniform plan and sample order change every epoch.
        "--set", "optim.batch_size=4", "--set", "data.crop_size=64", "--set", "data.workers=0",
        "--set", "data.class_uniform_tile=64", "--set", "loss.ohem_min_kept=1000",
        "--set", "loss.edge_ohem_min_kept=100", "--set", "val_every=0", "--set", "ckpt_every=1",
        "--set", "log_every=1", "--set", "seed=11", "--set", "model.backbone_weights=none",
    ]


def _step(checkpoint: Path) -> int | None:
    try:
        return int(load_checkpoint(checkpoint)[2]["step"])
    except CheckpointError:
        return None


@pytest.mark.slow
def test_killed_run_resumes_where_it_stopped(tmp_path, data_root):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    reference = subprocess.run(_command(data_root, tmp_path / "reference"), cwd=REPO, env=env,
                               capture_output=True, text=True, timeout=300)
    assert reference.returncode == 0, reference.stderr[-3000:]

    crashed = tmp_path / "crashed"
    proc = subprocess.Popen(_command(data_root, crashed), cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    try:
        while (_step(crashed / "last.pt") or 0) < 3:
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no checkpoint of step 3 appeared"
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    killed_at = _step(crashed / "last.pt")
    assert killed_at is not None and 3 <= killed_at < ITERATIONS
    assert not (crashed / "final.pt").exists()

    resumed = subprocess.run(_command(data_root, crashed), cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from {crashed / 'last.pt'} at step {killed_at}/{ITERATIONS}" in resumed.stdout

    # Same weights as the uninterrupted run: model, optimiser momentum, schedule, data order,
    # augmentation and dropout all continued exactly.
    ref_state, _, _ = load_checkpoint(tmp_path / "reference" / "final.pt")
    res_state, meta, _ = load_checkpoint(crashed / "final.pt")
    assert meta.training["step"] == ITERATIONS
    different = [k for k in ref_state if not torch.equal(ref_state[k], res_state[k])]
    assert not different, different[:5]
    ref_lr = [r["lr"] for r in read_scalars(tmp_path / "reference" / "scalars.jsonl")]
    res_lr = {r["step"]: r["lr"] for r in read_scalars(crashed / "scalars.jsonl")}
    assert [res_lr[s] for s in range(1, ITERATIONS + 1)] == ref_lr


def test_no_resume_starts_afresh_despite_last_pt(tmp_path, data_root, capsys, one_thread):
    args = _command(data_root, tmp_path, iterations=1)[3:]  # python -m training.train's arguments
    assert main(args) == 0
    first_state = load_checkpoint(tmp_path / "final.pt")[0]
    first_scalars = read_scalars(tmp_path / "scalars.jsonl")
    assert _step(tmp_path / "last.pt") == 1
    capsys.readouterr()

    assert main([*args, "--no-resume"]) == 0
    assert "resuming" not in capsys.readouterr().out
    # Step 1 again from the seeded initial weights: the same losses and the same weights.
    assert [r["step"] for r in first_scalars] == [1]
    assert read_scalars(tmp_path / "scalars.jsonl") == first_scalars * 2
    state, meta, _ = load_checkpoint(tmp_path / "final.pt")
    assert meta.training["step"] == 1
    different = [k for k in first_state if not torch.equal(first_state[k], state[k])]
    assert not different, different[:5]
