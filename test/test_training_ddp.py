"""The real DDP path: torchrun starts 2 gloo processes that train with SyncBN and gradient accumulation,
keep the best validation as best.pt, write files from rank 0 only and stop together on a non-finite
loss; training.evaluate under torchrun sums the processes' confusion matrices."""

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from bialign_ros.checkpoint import load_checkpoint
from bialign_ros.model import build_model
from training import evaluate
from training.config import ModelConfig, load_config
from training.data import EvalSet, find_samples
from training.distributed import DistContext
from training.scalars import read_scalars
from training.train import EXIT_NON_FINITE, sync_batchnorm, validate

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
ITERATIONS = 3
SEED = 4  # with it the validations of the run go down after the first, so the best is not the last

# Runs the library's own train() in each torchrun process and saves what that process holds, what
# it printed, and every write it made under the run directory. Python's audit events see those
# writes: files opened for writing (scalars, config, plots, centroid cache), the rename that puts
# every checkpoint in place, new directories. Then the same processes run training.evaluate's main
# on the final weights (argv[2]: its flags as JSON).
WORKER = textwrap.dedent(
    """
    import contextlib
    import io
    import json
    import os
    import sys
    import torch
    from training import distributed as du
    from training import evaluate
    from training.config import load_config
    from training.train import train

    out, eval_flags, overrides = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3:]
    cfg = load_config(None, overrides)
    run_dir = os.path.abspath(cfg.out_dir) + os.sep
    writes = []
    PATH_ARG = {"open": 0, "os.rename": 1, "os.mkdir": 0, "os.remove": 0, "os.rmdir": 0, "os.truncate": 0,
                "shutil.copyfile": 1}

    def watch(event, args):
        if event not in PATH_ARG or isinstance(args[PATH_ARG[event]], int):
            return
        if event == "open":
            _, mode, flags = args
            writing = any(c in mode for c in "wax+") if mode else flags & (os.O_WRONLY | os.O_RDWR)
            if not writing:
                return
        path = os.path.abspath(os.fsdecode(args[PATH_ARG[event]]))
        if path.startswith(run_dir):
            writes.append(path[len(run_dir):])

    sys.addaudithook(watch)
    ctx = du.init_distributed("cpu")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        result = train(cfg, ctx, progress=False)
    modules = list(result.model.modules())
    saved = {
        "state": result.model.state_dict(),
        "world_size": ctx.world_size,
        "backend": torch.distributed.get_backend(),
        "sync_bn": sum(isinstance(m, torch.nn.SyncBatchNorm) for m in modules),
        "plain_bn": sum(type(m) is torch.nn.BatchNorm2d for m in modules),
        "step": result.step,
        "writes": sorted(set(writes)),
        "stdout": printed.getvalue(),
    }
    saved["evaluate"] = evaluate.main([*eval_flags, "--out-dir", f"{out}/eval"])  # ends the process group
    torch.save(saved, f"{out}/rank{ctx.rank}.pt")
    """
)


def test_sync_batchnorm_can_convert_every_batchnorm_for_gpus():
    model = build_model()
    n_bn = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    keys = set(model.state_dict())
    gpus = DistContext(rank=0, world_size=2, device=torch.device("cuda", 0))
    synced = sync_batchnorm(model, ModelConfig(sync_bn_in_blocks=True), gpus)
    assert sum(isinstance(m, torch.nn.SyncBatchNorm) for m in synced.modules()) == n_bn
    assert not any(type(m) is torch.nn.BatchNorm2d for m in synced.modules())
    assert set(synced.state_dict()) == keys  # checkpoints still load into the runtime's model
    cpus = DistContext(rank=0, world_size=2, device=torch.device("cpu"))
    for unsynced in (sync_batchnorm(build_model(), ModelConfig(), cpus),
                     sync_batchnorm(build_model(), ModelConfig(sync_bn=False), gpus)):
        assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in unsynced.modules())


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    from bialign_ros.synthetic import write_cityscapes

    root = tmp_path_factory.mktemp("synthetic_ddp")
    write_cityscapes(root, split="train", num_images=8, height=64, width=128, seed=0, progress=False)
    write_cityscapes(root, split="val", num_images=2, height=64, width=128, seed=100, progress=False)
    return root


def _overrides(data_root: Path, run_dir: Path) -> list[str]:
    return [
        f"data.root={data_root}", f"out_dir={run_dir}", "device=cpu", f"seed={SEED}", "model.backbone_weights=none",
        "data.crop_size=64", "data.workers=0", "data.class_uniform_tile=64",
        f"optim.iterations={ITERATIONS}", "optim.batch_size=8", "optim.batch_per_device=2",  # 2 micro-batches
        "optim.lr=0.05", "loss.ohem_min_kept=500", "loss.edge_ohem_min_kept=100",
        "val_every=1", "ckpt_every=1", "log_every=1",
    ]


def _eval_flags(run_dir: Path, data_root: Path) -> list[str]:
    """training.evaluate on the run's final weights and 3 training images: rank 0 takes two, rank 1 one."""
    return ["--weights", str(run_dir / "final.pt"), "--data-root", str(data_root), "--split", "train",
            "--max-images", "3", "--device", "cpu", "--no-progress"]


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory, data_root):
    """A 2-process gloo training run under torchrun, then training.evaluate in the same processes
    (into ``run/../eval``); returns the run directory, its config overrides and what each process
    saved (weights, its writes under the run directory, its stdout, evaluate's exit code)."""
    tmp = tmp_path_factory.mktemp("ddp")
    script = tmp / "worker.py"
    script.write_text(WORKER)
    run_dir = tmp / "run"
    overrides = _overrides(data_root, run_dir)
    eval_flags = json.dumps(_eval_flags(run_dir, data_root))
    proc = subprocess.run([*TORCHRUN, str(script), str(tmp), eval_flags, *overrides], cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ranks = [torch.load(tmp / f"rank{r}.pt", weights_only=True) for r in range(2)]
    return run_dir, overrides, ranks


def _model(state: dict[str, torch.Tensor]) -> torch.nn.Module:
    model = build_model()
    model.load_state_dict(state, strict=True)
    return model


@pytest.mark.slow
def test_two_gloo_processes_end_with_identical_weights(ddp_run, data_root, one_thread):
    run_dir, overrides, ranks = ddp_run
    for r in ranks:
        assert (r["world_size"], r["backend"], r["step"]) == (2, "gloo", ITERATIONS)
        assert r["sync_bn"] == 0 and r["plain_bn"] > 0  # PyTorch syncs batch norm on GPUs only
    a, b = ranks[0]["state"], ranks[1]["state"]
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, different[:5]

    # Rank 0's checkpoint holds the same weights, loads into the plain (non-SyncBN) model, and
    # training moved the weights away from their seeded initialisation.
    state, meta, _ = load_checkpoint(run_dir / "final.pt")
    assert all(torch.equal(state[k], a[k]) for k in a)
    assert meta.training["config"]["optim"]["batch_size"] == 8 and meta.training["step"] == ITERATIONS
    torch.manual_seed(SEED)  # train() seeds the initial weights with cfg.seed
    init = build_model().state_dict()
    model = _model(state)
    floats = [k for k, v in init.items() if v.is_floating_point()]
    changed = [k for k in floats if not torch.equal(init[k], state[k])]
    assert len(changed) > 0.9 * len(floats)

    # Each validation ran on one image per process; the confusion matrices summed
    # across the processes give the mIoU that one process computes over both images.
    ddp_miou = [r["val/miou"] for r in read_scalars(run_dir / "scalars.jsonl") if "val/miou" in r]
    single = validate(model, EvalSet(find_samples(data_root, "val")), load_config(None, overrides),
                      DistContext(), progress=False)
    assert len(ddp_miou) == ITERATIONS and ddp_miou[-1] == pytest.approx(single["miou"], abs=1e-12)


@pytest.mark.slow
def test_only_rank_0_writes_files_and_logs(ddp_run):
    run_dir, _, (rank0, rank1) = ddp_run
    # The same watch sees rank 0 write every file of the run, so its silence on rank 1 means something.
    assert {"last.pt", "best.pt", "final.pt", "config.yaml", "scalars.jsonl", "curves.png"} <= set(rank0["writes"])
    assert any(name.startswith("class_centroids_") for name in rank0["writes"])
    assert rank1["writes"] == []
    assert "val mIoU" in rank0["stdout"] and rank1["stdout"] == ""


@pytest.mark.slow
def test_best_pt_holds_the_best_validation(ddp_run, data_root, one_thread):
    run_dir, overrides, _ = ddp_run
    validations = [(r["val/miou"], r["step"]) for r in read_scalars(run_dir / "scalars.jsonl") if "val/miou" in r]
    best_miou = max(miou for miou, _ in validations)
    best_step = next(step for miou, step in validations if miou == best_miou)  # the first to reach it
    assert best_step != validations[-1][1], f"the last validation is the best: {validations}"
    state, meta, _ = load_checkpoint(run_dir / "best.pt")
    assert (meta.training["val_miou"], meta.training["step"]) == (best_miou, best_step)
    assert meta.training["val"]["miou"] == best_miou
    # The weights are those that scored it, not the last ones.
    rescored = validate(_model(state), EvalSet(find_samples(data_root, "val")), load_config(None, overrides),
                        DistContext(), progress=False)
    assert rescored["miou"] == pytest.approx(best_miou, abs=1e-12)
    assert load_checkpoint(run_dir / "last.pt")[2]["best_miou"] == best_miou


def _free_port() -> int:
    """A TCP port nothing listens on now, for the process group's rendezvous."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_a_non_finite_loss_on_one_process_stops_every_process(ddp_run, data_root, tmp_path):
    run_dir, _, _ = ddp_run
    resumed = tmp_path / "run"
    shutil.copytree(run_dir, resumed)
    kept = {name: (resumed / name).read_bytes() for name in ("last.pt", "best.pt", "final.pt", "scalars.jsonl")}
    command = [sys.executable, "-m", "training.train", "--no-progress", "--iterations", str(ITERATIONS + 2)]
    for override in _overrides(data_root, resumed):
        command += ["--set", override]
    # The two processes of a torchrun launch, started directly so that each one's exit code is seen.
    # Rank 1 weights the edge term infinitely: its loss is infinite from the first step it resumes.
    env = {**ENV, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()), "WORLD_SIZE": "2"}
    procs = [
        subprocess.Popen(command + ["--set", "loss.edge_weight=.inf"] * rank, cwd=REPO,
                         env={**env, "RANK": str(rank), "LOCAL_RANK": str(rank)},
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for rank in range(2)
    ]
    try:
        outputs = [proc.communicate(timeout=240) for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    stdout, stderr = outputs[0][0], [err for _, err in outputs]
    assert [proc.returncode for proc in procs] == [EXIT_NON_FINITE] * 2, stderr
    assert f"resuming from {resumed / 'last.pt'} at step {ITERATIONS}/{ITERATIONS + 2}" in stdout
    # Each process names the loss terms it saw; rank 0's are finite.
    assert f"step {ITERATIONS + 1}: training loss is not finite on another process (this process: main=" in stderr[0]
    assert f"step {ITERATIONS + 1}: training loss is not finite (main=" in stderr[1]
    assert "total=inf" in stderr[1] or "total=nan" in stderr[1]
    for err in stderr:
        assert f"stopping, last good checkpoint: {resumed / 'last.pt'}" in err
    # Nothing was written over the last good state; no step after it was logged.
    assert {name: (resumed / name).read_bytes() for name in kept} == kept


@pytest.mark.slow
def test_evaluate_under_torchrun_sums_the_processes_shares(ddp_run, data_root, tmp_path, one_thread):
    run_dir, _, ranks = ddp_run
    assert [r["evaluate"] for r in ranks] == [0, 0]
    assert evaluate.main([*_eval_flags(run_dir, data_root), "--out-dir", str(tmp_path)]) == 0
    two, one = (json.loads((d / "metrics.json").read_text()) for d in (run_dir.parent / "eval", tmp_path))
    assert two["num_images"] == one["num_images"] == 3
    assert two["confusion_matrix"] == one["confusion_matrix"]
    assert sum(map(sum, one["confusion_matrix"])) == one["num_pixels"] > 0
    assert (two["miou"], two["pixel_accuracy"]) == (one["miou"], one["pixel_accuracy"])
    # Each process writes the predictions of its own images.
    preds = [{p.name: p.read_bytes() for p in (d / "pred").iterdir()} for d in (run_dir.parent / "eval", tmp_path)]
    assert len(preds[1]) == 3 and preds[0] == preds[1]
