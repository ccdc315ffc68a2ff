"""Train BiAlignNet on Cityscapes-format data: ``python -m training.train --config C.yaml``.

One process per device; under ``torchrun`` the processes form a DDP group (NCCL on GPUs, gloo
on CPU) with synchronised batch norm. ``optim.batch_size`` is the global batch: each optimiser
step accumulates ``batch_size / (world_size * batch_per_device)`` micro-batches per process, so
the recipe's 16-image batch is kept on any number of devices.

Files in ``out_dir`` (rank 0 writes):

- ``last.pt``: resume state (model, optimiser, scheduler, grad scaler, step), every
  ``ckpt_every`` steps. A rerun with the same ``out_dir`` continues from it. Data order,
  augmentation and dropout are functions of ``(seed, step)``, so the resumed run sees exactly
  the samples the uninterrupted run would have seen.
- ``best.pt`` / ``final.pt``: weights only, for the runtime (``bialign_node``, ``Segmenter``).
- ``config.yaml``, ``scalars.jsonl`` (+ ``tensorboard/`` when installed), ``curves.png``.

All checkpoints are :mod:`bialign_ros.checkpoint` files; ``meta.training`` holds the config.
A non-finite loss stops the run (exit code 3) without writing over the last good checkpoint.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from bialign_ros.checkpoint import ModelMeta, load_checkpoint, save_checkpoint
from bialign_ros.class_table import ClassTable, cityscapes_table
from bialign_ros.classes import IMAGENET_MEAN, IMAGENET_STD
from bialign_ros.metrics import summarize
from bialign_ros.model import build_model
from bialign_ros.model.bialign import CLASS_LAYERS
from bialign_ros.model.dfnet import BasicBlock
from training import distributed as du
from training.backbone import NO_BACKBONE, load_backbone, require_start
from training.config import ConfigError, ModelConfig, TrainConfig, config_to_dict, load_config
from training.data import (
    DatasetError,
    EvalSet,
    Sample,
    TrainSet,
    check_samples,
    class_table,
    find_samples,
    has_own_classes,
    iter_train_ids,
)
from training.evaluate import evaluate_confusion
from training.losses import LOSS_TERMS, edge_guided_loss
from training.plots import plot_training_curves
from training.sampler import (
    CentroidIndex,
    ShardedEpochSampler,
    build_centroid_index,
    centroid_cache_key,
    load_centroid_index,
    save_centroid_index,
)
from training.scalars import ScalarWriter
from training.transforms import normalize

EXIT_NON_FINITE = 3


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass
class TrainResult:
    """What :func:`train` returns: the trained (unwrapped) model and where the run stands."""

    model: nn.Module
    step: int
    best_miou: float | None
    last_miou: float | None
    out_dir: Path


def poly_factor(step: int, total: int, power: float) -> float:
    """Learning-rate multiplier ``(1 - step / total) ** power`` of the poly schedule."""
    return max(0.0, 1.0 - step / total) ** power


def autocast_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    """Mixed-precision dtype for ``optim.amp``: ``auto`` is bf16 on GPUs that compute in it
    natively (compute capability 8.0 and later), fp16 on older ones, full precision on the CPU."""
    if mode == "off" or (mode == "auto" and device.type != "cuda"):
        return None
    if mode == "fp16" and device.type != "cuda":
        raise ValueError("optim.amp=fp16 needs a CUDA device; use bf16 or off on the CPU")
    if mode == "auto":
        # The default (including_emulation=True) also says yes on V100/T4, which emulate bf16 slowly.
        native = torch.cuda.is_bf16_supported(including_emulation=False)
        return torch.bfloat16 if native else torch.float16
    return torch.bfloat16 if mode == "bf16" else torch.float16


def build_training_model(
    cfg: TrainConfig, ctx: du.DistContext, state: dict | None = None, table: ClassTable | None = None
) -> tuple[nn.Module, nn.Module]:
    """The model for ``table``'s classes (default: Cityscapes) with auxiliary and edge heads, on
    its device, SyncBN + DDP when distributed.

    ``state`` (a resumed state dict) takes precedence over ``model.init_weights`` (a whole
    bialign_ros checkpoint to fine-tune from), which takes precedence over ``model.backbone_weights``.
    Returns ``(model, model_without_ddp)``.
    """
    table = cityscapes_table() if table is None else table
    model = build_model(cfg.model.arch, num_classes=table.num_classes, gate=cfg.model.gate, aux=True, edge=True)
    if state is not None:
        model.load_state_dict(state, strict=True)
    elif cfg.model.init_weights:
        loaded = load_init_weights(model, cfg.model.init_weights, cfg.model.arch, table.names)
        if ctx.is_main:
            print(loaded)
    elif cfg.model.backbone_weights and cfg.model.backbone_weights != NO_BACKBONE:
        loaded = load_backbone(model, cfg.model)
        if ctx.is_main:
            print(loaded)
    model.to(ctx.device)
    if not ctx.distributed:
        return model, model
    model = sync_batchnorm(model, cfg.model, ctx)
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids), model


def load_init_weights(model: nn.Module, path: str, arch: str, class_names: Sequence[str]) -> str:
    """Load a whole bialign_ros checkpoint of ``arch`` into ``model``; returns what was loaded,
    for the log.

    Heads the checkpoint lacks keep their fresh initialisation. When its classes are not
    ``class_names`` (another count, or other classes), the class layers (:data:`CLASS_LAYERS`)
    are re-initialised and everything else (backbone, context, alignment, edge head) is loaded.
    A different arch or other mismatched shapes raise ``ValueError``.
    """
    state, meta, _ = load_checkpoint(path)
    if meta.arch != arch:
        raise ValueError(f"model.init_weights: {path} holds {meta.arch}, the config trains {arch}")
    same_classes = tuple(meta.class_names) == tuple(class_names)
    fresh = [] if same_classes else sorted(k for k in state if k.rsplit(".", 1)[0] in CLASS_LAYERS)
    state = {k: v for k, v in state.items() if k not in fresh}
    own = model.state_dict()
    wrong = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    unknown = [k for k in state if k not in own]
    if wrong or unknown:
        raise ValueError(f"model.init_weights: {path} does not fit {arch}: "
                         f"{len(wrong)} shape mismatch(es) {wrong[:3]}, {len(unknown)} unknown key(s) {unknown[:3]}")
    model.load_state_dict(state, strict=False)
    loaded = f"init weights: {len(state)} tensors from {path}"
    if same_classes:
        return loaded
    return (f"{loaded}; its {meta.num_classes} classes are not the data's {len(class_names)}, so the class "
            f"layers start afresh: {', '.join(fresh)}")


def sync_batchnorm(model: nn.Module, cfg: ModelConfig, ctx: du.DistContext) -> nn.Module:
    """Synchronise batch norm across the processes of a multi-GPU run (``model.sync_bn``).

    PyTorch synchronises batch norm on GPUs only: CPU (gloo) processes each normalise their own
    batch, and rank 0's running statistics are copied to the others before validation and at
    the end.
    """
    if not (cfg.sync_bn and ctx.distributed):
        return model
    if ctx.device.type != "cuda":
        if ctx.is_main:
            print("note: SyncBatchNorm needs GPUs; on the CPU every process normalises its own batch")
        return model
    return convert_sync_batchnorm(model, cfg.sync_bn_in_blocks)


def convert_sync_batchnorm(module: nn.Module, in_blocks: bool) -> nn.Module:
    """``module`` with its batch norms turned into ``SyncBatchNorm``.

    With ``in_blocks`` False, as in the authors' code, the ``bn1``/``bn2`` of the backbone's
    residual blocks stay per-process ``BatchNorm2d`` (their blocks build them without the
    network's norm layer); the stem, shortcut, context, spatial and head norms are synced.
    """
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    local = ("bn1", "bn2") if isinstance(module, BasicBlock) and not in_blocks else ()
    for name, child in module.named_children():
        if name not in local:
            module.add_module(name, convert_sync_batchnorm(child, in_blocks))
    return module


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD (the recipe: weight decay on every parameter, no Nesterov) or AdamW."""
    o = cfg.optim
    if o.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=o.lr, weight_decay=o.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)


def load_or_build_centroids(
    samples: Sequence[Sample], table: ClassTable, cfg: TrainConfig, ctx: du.DistContext, progress: bool = True
) -> CentroidIndex:
    """Class-uniform centroids of the training labels, cached in ``out_dir`` (rank 0 builds)."""
    tile, all_tiles = cfg.data.class_uniform_tile, cfg.data.class_uniform_all_tiles
    key = centroid_cache_key([s.name for s in samples], table.num_classes, tile, all_tiles)
    tiles = "all" if all_tiles else "col0"
    path = Path(cfg.out_dir) / f"class_centroids_{cfg.data.train_split}_tile{tile}_{tiles}.json"
    if ctx.is_main and load_centroid_index(path, key) is None:
        maps = iter_train_ids(samples, table.lut)
        maps = tqdm(maps, total=len(samples), desc="class centroids", leave=False, disable=not progress)
        save_centroid_index(path, build_centroid_index(maps, table.num_classes, tile, all_tiles), key)
    du.barrier(ctx)
    index = load_centroid_index(path, key)
    assert index is not None  # written above by rank 0
    return index


def check_data(samples: Sequence[Sample], table: ClassTable, ctx: du.DistContext, progress: bool) -> None:
    """Rank 0 reads every label of an own-classes data set (:func:`training.data.check_samples`);
    every process raises :class:`DatasetError` if it found a problem."""
    problem = None
    if ctx.is_main:
        try:
            check_samples(samples, table, progress)
        except DatasetError as exc:
            problem = str(exc)
    if du.any_process(problem is not None, ctx):
        raise DatasetError(problem or "rank 0 found a problem in the data set (see its log)")


def make_meta(cfg: TrainConfig, table: ClassTable, **training: Any) -> ModelMeta:
    """Checkpoint metadata: the data's class table, ImageNet normalisation and the config."""
    return ModelMeta(
        arch=cfg.model.arch,
        gate=cfg.model.gate,
        class_names=table.names,
        class_colors=table.colors,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        channel_order="rgb",
        training={"config": config_to_dict(cfg), **training},
    )


def validate(
    model: nn.Module, dataset: EvalSet, cfg: TrainConfig, ctx: du.DistContext, progress: bool = True
) -> dict:
    """Validation with the protocol of ``cfg.eval``; returns :func:`bialign_ros.metrics.summarize`."""
    was_training = model.training
    model.eval()

    def preprocess(image: np.ndarray) -> torch.Tensor:
        return normalize(image, IMAGENET_MEAN, IMAGENET_STD).unsqueeze(0).to(ctx.device)

    matrix, _ = evaluate_confusion(
        lambda x: model(x)[0], preprocess, dataset, ctx, dataset.table.num_classes, protocol=cfg.eval,
        max_images=cfg.data.val_max_images, progress=progress,
    )
    model.train(was_training)
    return summarize(matrix, dataset.table.names)


def train_step(
    model: nn.Module,
    batches: Sequence[dict[str, torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    amp: torch.dtype | None,
    cfg: TrainConfig,
    ctx: du.DistContext,
) -> dict[str, torch.Tensor]:
    """One optimiser step over ``batches`` (gradient accumulation); returns the mean loss terms.

    Gradients are all-reduced only on the last micro-batch. Raises :class:`NonFiniteLossError`
    on every process, before the update, when any process saw a non-finite loss.
    """
    optimizer.zero_grad(set_to_none=True)
    sums: dict[str, torch.Tensor] = {}
    for i, batch in enumerate(batches):
        last = i == len(batches) - 1
        sync = contextlib.nullcontext() if last or not ctx.distributed else model.no_sync()
        with sync:
            image = batch["image"].to(ctx.device, non_blocking=True)
            labels = batch["labels"].to(ctx.device, non_blocking=True)
            edges = batch["edges"].to(ctx.device, non_blocking=True)
            with torch.autocast(ctx.device.type, dtype=amp or torch.float32, enabled=amp is not None):
                outputs = model(image)
            terms = edge_guided_loss(outputs, labels, edges, cfg.loss)
            scaler.scale(terms["total"] / len(batches)).backward()
        for name, value in terms.items():
            sums[name] = sums.get(name, 0.0) + value.detach() / len(batches)
    finite = bool(torch.isfinite(sums["total"]))
    if du.any_process(not finite, ctx):
        terms = ", ".join(f"{k}={float(v):.4g}" for k, v in sums.items())
        where = f"({terms})" if not finite else f"on another process (this process: {terms})"
        raise NonFiniteLossError(f"training loss is not finite {where}")
    scaler.step(optimizer)
    scaler.update()
    return sums


def train(cfg: TrainConfig, ctx: du.DistContext, resume: bool = True, progress: bool = True) -> TrainResult:
    """Run (or continue) the training described by ``cfg`` in this process."""
    out = Path(cfg.out_dir)
    o = cfg.optim
    if o.batch_size % (ctx.world_size * o.batch_per_device):
        raise ValueError(
            f"optim.batch_size {o.batch_size} is not a multiple of {ctx.world_size} processes x "
            f"optim.batch_per_device {o.batch_per_device}"
        )
    per_process = o.batch_size // ctx.world_size
    accumulation = per_process // o.batch_per_device
    if not cfg.data.root:
        raise DatasetError("no data root: set data.root in the config or pass --data-root")
    last_path = out / "last.pt"
    if not (resume and last_path.is_file()):
        require_start(cfg.model)
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
    du.barrier(ctx)

    d = cfg.data
    table = class_table(d.root)
    samples = find_samples(d.root, d.train_split)
    val_samples = find_samples(d.root, d.val_split) if cfg.val_every else []
    if has_own_classes(d.root):
        check_data(samples + val_samples, table, ctx, progress)
    train_set = TrainSet(  # the data section is the TrainAugmentation
        samples, d, load_or_build_centroids(samples, table, cfg, ctx, progress), table,
        class_uniform_pct=d.class_uniform_pct, edge_width=d.edge_width, seed=cfg.seed,
    )
    steps_per_epoch = len(train_set) // o.batch_size
    if steps_per_epoch == 0:
        raise DatasetError(f"an epoch has {len(train_set)} samples, fewer than one batch of {o.batch_size}")
    sampler = ShardedEpochSampler(
        len(train_set), steps_per_epoch * per_process, ctx.world_size, ctx.rank, seed=cfg.seed
    )
    val_set = EvalSet(val_samples, table) if cfg.val_every else None

    resume_state: dict[str, Any] = {}
    weights = None
    if resume and last_path.is_file():
        weights, _, resume_state = load_checkpoint(last_path)
    torch.manual_seed(cfg.seed)  # the same initial weights on every process and every rerun
    model, bare = build_training_model(cfg, ctx, weights, table)
    optimizer = build_optimizer(model, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, functools.partial(poly_factor, total=o.iterations, power=o.poly_power)
    )
    amp = autocast_dtype(o.amp, ctx.device)
    scaler = torch.amp.GradScaler(ctx.device.type, enabled=amp == torch.float16)
    step, best, last_miou = 0, None, None
    if resume_state:
        optimizer.load_state_dict(resume_state["optimizer"])
        scheduler.load_state_dict(resume_state["scheduler"])
        scaler.load_state_dict(resume_state["scaler"])
        step, best = int(resume_state["step"]), resume_state.get("best_miou")
        if ctx.is_main:
            print(f"resuming from {last_path} at step {step}/{o.iterations}")

    writer = ScalarWriter(out) if ctx.is_main else None
    if ctx.is_main:
        (out / "config.yaml").write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))

    def checkpoint_state() -> dict[str, Any]:
        return {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "step": step,
            "best_miou": best,
            "world_size": ctx.world_size,
        }

    epoch, offset = divmod(step, steps_per_epoch)
    sampler.set_start(epoch, offset * per_process)
    loader = DataLoader(
        train_set, batch_size=o.batch_per_device, sampler=sampler, num_workers=d.workers,
        pin_memory=ctx.device.type == "cuda", drop_last=True,
    )
    batches = iter(loader)
    bar = tqdm(total=o.iterations, initial=step, desc="train", disable=not (progress and ctx.is_main))
    model.train()
    try:
        while step < o.iterations:
            # Dropout draws from the global generator: seed it per step for exact resumes.
            torch.manual_seed(cfg.seed * 1_000_003 + step * 1009 + ctx.rank)
            terms = train_step(
                model, [next(batches) for _ in range(accumulation)], optimizer, scaler, amp, cfg, ctx
            )
            scheduler.step()
            step += 1
            bar.update(1)
            if cfg.log_every and (step % cfg.log_every == 0 or step == o.iterations):
                names = [*LOSS_TERMS, "total"]
                mean = du.all_reduce_mean(torch.stack([terms[k].float() for k in names]), ctx)
                scalars = {f"loss/{k}": float(v) for k, v in zip(names, mean)}
                scalars["lr"] = optimizer.param_groups[0]["lr"]
                bar.set_postfix(loss=f"{scalars['loss/total']:.3f}", lr=f"{scalars['lr']:.2e}")
                if writer:
                    writer.add(step, scalars)
            if val_set is not None and (step % cfg.val_every == 0 or step == o.iterations):
                du.broadcast_buffers(bare, ctx)
                summary = validate(bare, val_set, cfg, ctx, progress)
                last_miou = summary["miou"]
                if writer:
                    writer.add(step, {"val/miou": last_miou or 0.0, "val/pixel_accuracy":
                                      summary["pixel_accuracy"] or 0.0})
                    bar.write(f"step {step}: val mIoU {100 * (last_miou or 0):.2f}%")
                if last_miou is not None and (best is None or last_miou > best):
                    best = last_miou
                    if ctx.is_main:
                        save_checkpoint(out / "best.pt", bare.state_dict(),
                                        make_meta(cfg, table, step=step, val_miou=best, val=summary))
            if ctx.is_main and cfg.ckpt_every and (step % cfg.ckpt_every == 0 or step == o.iterations):
                meta = make_meta(cfg, table, step=step)
                save_checkpoint(last_path, bare.state_dict(), meta, checkpoint_state())
    except NonFiniteLossError as exc:
        kept = f"last good checkpoint: {last_path}" if last_path.is_file() else "no checkpoint written yet"
        raise NonFiniteLossError(f"step {step + 1}: {exc}; stopping, {kept}") from exc
    finally:
        del batches  # stops the loader's worker processes
        bar.close()
        if writer:
            writer.close()
    du.broadcast_buffers(bare, ctx)
    if ctx.is_main:
        save_checkpoint(out / "final.pt", bare.state_dict(), make_meta(cfg, table, step=step, val_miou=last_miou))
        if writer and writer.jsonl_path.is_file():
            plot_training_curves(writer.jsonl_path, out / "curves.png")
    du.barrier(ctx)
    return TrainResult(model=bare, step=step, best_miou=best, last_miou=last_miou, out_dir=out)


def get_args_parser() -> argparse.ArgumentParser:
    """Command-line interface of ``python -m training.train``."""
    p = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, help="YAML config (default: the built-in Cityscapes recipe)")
    p.add_argument("--data-root", help="Cityscapes root holding leftImg8bit/ and gtFine/ (data.root)")
    p.add_argument("--out-dir", help="run directory for checkpoints and logs (out_dir)")
    p.add_argument("--backbone-weights", help="ImageNet DFNet weights file (model.backbone_weights)")
    p.add_argument("--trust-source", action="store_true", default=None,
                   help="read a backbone file that holds numpy scalars or other objects (full unpickling; "
                        "trusted files only) (model.backbone_trust_source)")
    p.add_argument("--init-weights", help="bialign_ros checkpoint to fine-tune from (model.init_weights)")
    p.add_argument("--iterations", type=int, help="optimiser steps (optim.iterations)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), help="device (device)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override any config field, e.g. --set optim.lr=0.02 (repeatable)")
    p.add_argument("--no-resume", action="store_true", help="start afresh even if OUT/last.pt exists")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The config file with the shortcut flags and ``--set`` overrides applied (flags win)."""
    shortcuts = {
        "data.root": args.data_root,
        "out_dir": args.out_dir,
        "model.backbone_weights": args.backbone_weights,
        "model.backbone_trust_source": args.trust_source,
        "model.init_weights": args.init_weights,
        "optim.iterations": args.iterations,
        "device": args.device,
    }
    overrides = list(args.overrides)
    overrides += [f"{k}={json.dumps(v)}" for k, v in shortcuts.items() if v is not None]
    return load_config(args.config, overrides)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = get_args_parser().parse_args(argv)
    try:
        cfg = config_from_args(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    ctx = du.init_distributed(cfg.device)
    try:
        result = train(cfg, ctx, resume=not args.no_resume, progress=not args.no_progress)
    except NonFiniteLossError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_NON_FINITE
    except (DatasetError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        du.cleanup()
    if ctx.is_main:
        miou = "n/a" if result.last_miou is None else f"{100 * result.last_miou:.2f}%"
        print(f"done: {result.step} steps, val mIoU {miou}; weights: {result.out_dir / 'final.pt'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
