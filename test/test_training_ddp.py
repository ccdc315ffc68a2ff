"""The real DDP path: torchrun starts 2 gloo processes that train with SyncBN and gradient accumulation."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from bialign_ros.checkpoint import load_checkpoint
from bialign_ros.model import build_model
from training.config import ModelConfig, load_config
from training.data import EvalSet, find_samples
from training.distributed import DistContext
from training.scalars import read_scalars
from training.train import sync_batchnorm, validate

REPO = Path(__file__).resolve().parents[1]

# Runs the library's own train() in each torchrun process and saves what that process holds.
WORKER = textwrap.dedent(
    """
    import sys
    import torch
    from training import distributed as du
    from training.config import load_config
    from training.train import train

    out, overrides = sys.argv[1], sys.argv[2:]
    ctx = du.init_distributed("cpu")
    result = train(load_config(None, overrides), ctx, progress=False)
    modules = list(result.model.modules())
    torch.save({
        "state": result.model.state_dict(),
        "world_size": ctx.world_size,
        "backend": torch.distributed.get_backend(),
        "sync_bn": sum(isinstance(m, torch.nn.SyncBatchNorm) for m in modules),
        "plain_bn": sum(type(m) is torch.nn.BatchNorm2d for m in modules),
        "step": result.step,
    }, f"{out}/rank{ctx.rank}.pt")
    du.cleanup()
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


@pytest.mark.slow
def test_two_gloo_processes_end_with_identical_weights(tmp_path, data_root):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    run_dir = tmp_path / "run"
    overrides = [
        f"data.root={data_root}", f"out_dir={run_dir}", "device=cpu", "seed=3", "model.backbone_weights=none",
        "data.crop_size=64", "data.workers=0", "data.class_uniform_tile=64",
        "optim.iterations=3", "optim.batch_size=8", "optim.batch_per_device=2",  # 2 micro-batches per process
        "loss.ohem_min_kept=500", "loss.edge_ohem_min_kept=100",
        "val_every=3", "ckpt_every=3", "log_every=1",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(script), str(tmp_path), *overrides]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    for r in ranks:
        assert (r["world_size"], r["backend"], r["step"]) == (2, "gloo", 3)
        assert r["sync_bn"] == 0 and r["plain_bn"] > 0  # PyTorch syncs batch norm on GPUs only
    a, b = ranks[0]["state"], ranks[1]["state"]
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, different[:5]

    # Rank 0's checkpoint holds the same weights, loads into the plain (non-SyncBN) model, and
    # training moved the weights away from their seeded initialisation.
    state, meta, _ = load_checkpoint(run_dir / "final.pt")
    assert all(torch.equal(state[k], a[k]) for k in a)
    assert meta.training["config"]["optim"]["batch_size"] == 8 and meta.training["step"] == 3
    torch.manual_seed(3)  # train() seeds the initial weights with cfg.seed
    model = build_model()
    init = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(state, strict=True)
    floats = [k for k, v in init.items() if v.is_floating_point()]
    changed = [k for k in floats if not torch.equal(init[k], state[k])]
    assert len(changed) > 0.9 * len(floats)

    # Validation at the last step ran on one image per process; the confusion matrices summed
    # across the processes give the mIoU that one process computes over both images.
    ddp_miou = [r["val/miou"] for r in read_scalars(run_dir / "scalars.jsonl") if "val/miou" in r]
    single = validate(model, EvalSet(find_samples(data_root, "val")), load_config(None, overrides),
                      DistContext(), progress=False)
    assert ddp_miou == [pytest.approx(single["miou"], abs=1e-12)]
