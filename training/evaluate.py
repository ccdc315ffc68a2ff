"""Evaluate a checkpoint on a Cityscapes-format split: ``python -m training.evaluate``.

Writes ``OUT/metrics.json`` (mIoU, pixel accuracy, per-class IoU, confusion matrix), the
predictions as Cityscapes label-ID PNGs ``OUT/pred/<city>_<seq>_<frame>_leftImg8bit.png`` (the
names the official evaluator and benchmark server match), a per-class IoU bar chart and a
confusion-matrix image. Under ``torchrun`` every process evaluates a share of the images and
the confusion matrices are summed.

Preprocessing is the runtime's: the checkpoint is loaded by :class:`bialign_ros.segmenter.Segmenter`
(its mean/std and channel order come from the checkpoint's metadata); multi-scale and flip
inference average the softmax probabilities.
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

from bialign_ros.classes import CITYSCAPES_NAMES, train_id_to_label_id_lut
from bialign_ros.metrics import ConfusionMatrix, summarize
from bialign_ros.plots import plot_confusion_matrix, plot_per_class_iou
from training import distributed as du
from training.data import CityscapesEvalSet, find_samples

Forward = Callable[[torch.Tensor], torch.Tensor]
"""A function from a normalised N x 3 x H x W batch to N x C x H x W logits."""


def predict_probabilities(
    forward: Forward, x: torch.Tensor, scales: Sequence[float] = (1.0,), flip: bool = False
) -> torch.Tensor:
    """Class probabilities at the size of ``x``, averaged over ``scales`` and, with ``flip``,
    over horizontally mirrored inputs."""
    h, w = x.shape[-2:]
    total = None
    for scale in scales:
        size = (max(8, round(h * scale)), max(8, round(w * scale)))
        xs = x if size == (h, w) else F.interpolate(x, size=size, mode="bilinear", align_corners=True)
        views = [(xs, False), (xs.flip(-1), True)] if flip else [(xs, False)]
        for view, flipped in views:
            logits = forward(view).float()
            if flipped:
                logits = logits.flip(-1)
            if logits.shape[-2:] != (h, w):
                logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=True)
            prob = logits.softmax(dim=1)
            total = prob if total is None else total + prob
    return total / (len(scales) * (2 if flip else 1))


@torch.inference_mode()
def evaluate_confusion(
    forward: Forward,
    preprocess: Callable[[np.ndarray], torch.Tensor],
    dataset: CityscapesEvalSet,
    ctx: du.DistContext,
    num_classes: int,
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
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
        prob = predict_probabilities(forward, x, scales, flip)
        if prob.shape[-2:] != labels.shape:  # the network ran at another size (e.g. a fixed-size export)
            prob = F.interpolate(prob, size=labels.shape, mode="bilinear", align_corners=True)
        pred = prob.argmax(dim=1)[0].to(torch.uint8).cpu().numpy()
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
    p.add_argument("--scales", type=float, nargs="+", default=[1.0], help="input scales to average")
    p.add_argument("--flip", action="store_true", help="also average horizontally flipped inputs")
    p.add_argument("--max-images", type=int, default=0, help="evaluate only the first N images (0: all)")
    p.add_argument("--no-pred", action="store_true", help="do not write prediction PNGs")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--out-dir", required=True, type=Path)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    from bialign_ros.segmenter import Segmenter

    args = get_args_parser().parse_args(argv)
    if any(s <= 0 for s in args.scales):
        raise SystemExit(f"--scales must be positive, got {args.scales}")
    ctx = du.init_distributed(args.device)
    try:
        seg = Segmenter.from_checkpoint(
            args.weights, device=str(ctx.device), precision=args.precision, warmup=False
        )
        meta = seg.meta
        if tuple(meta.class_names) != CITYSCAPES_NAMES:
            raise SystemExit(
                f"{args.weights} predicts {meta.num_classes} classes {list(meta.class_names)[:5]}...; "
                "Cityscapes evaluation needs the 19 Cityscapes classes in train-ID order"
            )
        dataset = CityscapesEvalSet(find_samples(args.data_root, args.split))
        pred_dir = args.out_dir / "pred"
        pred_dir.mkdir(parents=True, exist_ok=True)
        to_label_id = train_id_to_label_id_lut()

        def write_prediction(name: str, train_ids: np.ndarray) -> None:
            cv2.imwrite(str(pred_dir / f"{name}_leftImg8bit.png"), to_label_id[train_ids])

        matrix, count = evaluate_confusion(
            lambda x: seg.forward(x)[0],
            seg.preprocess,
            dataset,
            ctx,
            meta.num_classes,
            scales=args.scales,
            flip=args.flip,
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
                scales=list(args.scales),
                flip=args.flip,
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


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


if __name__ == "__main__":
    sys.exit(main())
