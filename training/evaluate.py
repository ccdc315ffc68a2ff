"""Evaluate a checkpoint on a split of a data set: ``python -m training.evaluate``.

Writes ``OUT/metrics.json`` (mIoU, pixel accuracy, per-class IoU, confusion matrix), the
predictions as label PNGs, a per-class IoU bar chart and a confusion-matrix image. On
Cityscapes the predictions are label-ID PNGs ``OUT/pred/<city>_<seq>_<frame>_leftImg8bit.png``
(the names the official evaluator and benchmark server match); on an own-classes data set
(:mod:`training.data`) they are ``OUT/pred/<stem>.png`` holding each class's first label value
from ``classes.yaml``. The checkpoint's classes must be the data set's. Under ``torchrun``
every process evaluates a share of the images and the confusion matrices are summed.

Preprocessing is the runtime's: the checkpoint is loaded by :class:`bialign_ros.segmenter.Segmenter`
(its mean/std and channel order come from the checkpoint's metadata). The protocol (flip,
scales, what is averaged) is the checkpoint's training config ``eval`` section unless flags
say otherwise, and the authors' evaluation script (whole image, scale 1.0, the logits of the
image and of its mirror image averaged) for checkpoints without one.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from bialign_ros.metrics import ConfusionMatrix, summarize
from bialign_ros.plots import plot_confusion_matrix, plot_per_class_iou
from training import distributed as du
from training.config import EVAL_AVERAGES, ConfigError, EvalConfig
from training.data import EvalSet, class_table, find_samples, has_own_classes

AUTHORS_PROTOCOL = EvalConfig()
"""The authors' evaluation script: whole image, scale 1.0, flip-averaged logits."""

Forward = Callable[[torch.Tensor], torch.Tensor]
"""A function from a normalised N x 3 x H x W batch to N x C x H x W logits."""


def predict_scores(forward: Forward, x: torch.Tensor, protocol: EvalConfig = AUTHORS_PROTOCOL) -> torch.Tensor:
    """Per-class scores at the size of ``x`` whose argmax is the prediction: the logits or the
    softmax probabilities (``protocol.average``) averaged over ``protocol.scales`` and, with
    ``protocol.flip``, over horizontally mirrored inputs."""
    h, w = x.shape[-2:]
    total = None
    for scale in protocol.scales:
        size = (max(8, round(h * scale)), max(8, round(w * scale)))
        xs = x if size == (h, w) else F.interpolate(x, size=size, mode="bilinear", align_corners=True)
        views = [(xs, False), (xs.flip(-1), True)] if protocol.flip else [(xs, False)]
        for view, flipped in views:
            scores = forward(view).float()
            if flipped:
                scores = scores.flip(-1)
            if scores.shape[-2:] != (h, w):
                scores = F.interpolate(scores, size=(h, w), mode="bilinear", align_corners=True)
            if protocol.average == "probabilities":
                scores = scores.softmax(dim=1)
            total = scores if total is None else total + scores
    return total / (len(protocol.scales) * (2 if protocol.flip else 1))


@torch.inference_mode()
def evaluate_confusion(
    forward: Forward,
    preprocess: Callable[[np.ndarray], torch.Tensor],
    dataset: EvalSet,
    ctx: du.DistContext,
    num_classes: int,
    protocol: EvalConfig = AUTHORS_PROTOCOL,
    max_images: int = 0,
    on_prediction: Callable[[str, np.ndarray], None] | None = None,
    progress: bool = True,
) -> tuple[np.ndarray, int]:
    """Confusion matrix of ``dataset`` summed over all processes, and the number of images.

    Process ``r`` of ``w`` takes images ``r, r + w, ...`` (no padding, so no image counts twice).
    ``preprocess`` turns an H x W x 3 uint8 RGB image into a normalised 1 x 3 x H x W tensor on
    the model's device; ``on_prediction(name, train_ids)`` is called for every image.
    """
    count = len(dataset) if max_images <= 0 else min(max_images, len(dataset))
    shard = Subset(dataset, range(ctx.rank, count, ctx.world_size))
    loader = DataLoader(shard, batch_size=None, shuffle=False, num_workers=0)
    confusion = ConfusionMatrix(num_classes)
    for item in tqdm(loader, desc="evaluate", disable=not (progress and ctx.is_main), leave=False):
        x = preprocess(item["image"].numpy())
        labels = item["labels"].numpy()
        scores = predict_scores(forward, x, protocol)
        if scores.shape[-2:] != labels.shape:  # the network ran at another size (e.g. a fixed-size export)
            scores = F.interpolate(scores, size=labels.shape, mode="bilinear", align_corners=True)
        pred = scores.argmax(dim=1)[0].to(torch.uint8).cpu().numpy()
        confusion.update(labels, pred)
        if on_prediction is not None:
            on_prediction(item["name"], pred)
    return du.all_reduce_sum(confusion.matrix, ctx), count


def get_args_parser() -> argparse.ArgumentParser:
    """Command-line interface of ``python -m training.evaluate``."""
    p = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__.splitlines()[0])
    p.add_argument("--weights", required=True, help="bialign_ros checkpoint (.pt)")
    p.add_argument("--data-root", required=True, help="Cityscapes root holding leftImg8bit/ and gtFine/")
    p.add_argument("--split", default="val")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "bf16", "auto"),
                   help="inference precision (fp32 for reference numbers)")
    p.add_argument("--scales", type=float, nargs="+",
                   help="input scales to average (default: the checkpoint's eval.scales, else 1.0)")
    p.add_argument("--flip", action=argparse.BooleanOptionalAction,
                   help="also average horizontally mirrored inputs (default: the checkpoint's eval.flip, else on)")
    p.add_argument("--average", choices=EVAL_AVERAGES,
                   help="what the views average (default: the checkpoint's eval.average, else logits)")
    p.add_argument("--max-images", type=int, default=0, help="evaluate only the first N images (0: all)")
    p.add_argument("--no-pred", action="store_true", help="do not write prediction PNGs")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--out-dir", required=True, type=Path)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    from bialign_ros.segmenter import Segmenter

    args = get_args_parser().parse_args(argv)
    ctx = du.init_distributed(args.device)
    try:
        seg = Segmenter.from_checkpoint(
            args.weights, device=str(ctx.device), precision=args.precision, warmup=False
        )
        meta = seg.meta
        protocol = eval_protocol(meta.training, args)
        table = class_table(args.data_root)
        if tuple(meta.class_names) != table.names:
            raise SystemExit(
                f"{args.weights} predicts {meta.num_classes} classes {_names(meta.class_names)}, but the data "
                f"set at {args.data_root} is labelled with {table.num_classes}: {_names(table.names)} "
                "(in train-ID order)"
            )
        dataset = EvalSet(find_samples(args.data_root, args.split), table)
        pred_dir = args.out_dir / "pred"
        pred_dir.mkdir(parents=True, exist_ok=True)
        to_label_value = table.label_values()
        suffix = ".png" if has_own_classes(args.data_root) else "_leftImg8bit.png"

        def write_prediction(name: str, train_ids: np.ndarray) -> None:
            cv2.imwrite(str(pred_dir / f"{name}{suffix}"), to_label_value[train_ids])

        matrix, count = evaluate_confusion(
            lambda x: seg.forward(x)[0],
            seg.preprocess,
            dataset,
            ctx,
            meta.num_classes,
            protocol=protocol,
            max_images=args.max_images,
            on_prediction=None if args.no_pred else write_prediction,
            progress=not args.no_progress,
        )
        if ctx.is_main:
            summary = summarize(matrix, meta.class_names)
            summary.update(
                weights=str(args.weights),
                split=args.split,
                num_images=count,
                scales=list(protocol.scales),
                flip=protocol.flip,
                average=protocol.average,
                confusion_matrix=matrix.tolist(),
            )
            (args.out_dir / "metrics.json").write_text(json.dumps(summary, indent=2))
            plot_per_class_iou(summary["per_class_iou"], args.out_dir / "per_class_iou.png", meta.class_colors)
            plot_confusion_matrix(matrix, meta.class_names, args.out_dir / "confusion_matrix.png")
            print(f"mIoU {_percent(summary['miou'])} over {count} images of {args.split!r}; "
                  f"pixel accuracy {_percent(summary['pixel_accuracy'])}; results in {args.out_dir}")
        du.barrier(ctx)
    finally:
        du.cleanup()
    return 0


def eval_protocol(training: dict, args: argparse.Namespace) -> EvalConfig:
    """The checkpoint's ``eval`` config (the authors' protocol when it has none), with the
    command line's ``--flip``/``--scales``/``--average`` applied."""
    recorded = training.get("config", {}).get("eval", {})
    given = {"flip": args.flip, "scales": args.scales, "average": args.average}
    fields = {**recorded, **{k: v for k, v in given.items() if v is not None}}
    try:
        return EvalConfig(**{k: tuple(v) if k == "scales" else v for k, v in fields.items()})
    except ConfigError as exc:
        raise SystemExit(str(exc).replace("eval.", "--")) from None


def _names(names: Sequence[str]) -> str:
    return ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


if __name__ == "__main__":
    sys.exit(main())
