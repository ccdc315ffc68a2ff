"""Train the demo weights on the synthetic Cityscapes-format set: ``python -m training.demo_weights``.

Writes a synthetic training set and a held-out set (scenes from other seeds) in the Cityscapes
layout, trains ``bialign_dfnet2`` with ``configs/synthetic_demo.yaml``, evaluates the held-out
set with ``training.evaluate`` and copies the weights-only checkpoint to ``--out``. Rerunning
continues an interrupted training; ``--fresh`` starts over. ``make demo-weights`` runs it once
and caches the result; ``make train-demo`` retrains.

The short training learns the scenes from crops that mostly show them small: the weights work
best with the network input at a quarter of the 512 x 1024 frame size (``--input-scale 0.25``
of ``Segmenter`` / ``bialign_segment``), which is also 16 times faster. The held-out evaluation
uses that scale, and the checkpoint records it as ``meta.training["input_scale"]``.
``make bench-weights`` runs it again with ``configs/synthetic_fullres.yaml`` on 1024 x 2048 frames,
starting from the demo weights (``model.init_weights``), for input scale 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from bialign_ros.checkpoint import load_checkpoint, save_checkpoint
from training import evaluate
from training import train as train_cli

DEMO_CONFIG = Path(__file__).resolve().parent / "configs" / "synthetic_demo.yaml"
HELD_OUT_SEED = 10_000  # held-out scenes are rendered from seeds no training scene uses


def get_args_parser() -> argparse.ArgumentParser:
    """Command-line interface of ``python -m training.demo_weights``."""
    p = argparse.ArgumentParser(prog="python -m training.demo_weights", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path, help="where to put the trained checkpoint")
    p.add_argument("--work-dir", type=Path, default=Path(".cache/demo_training"),
                   help="synthetic data, run directory and evaluation results")
    p.add_argument("--config", type=Path, default=DEMO_CONFIG)
    p.add_argument("--train-images", type=int, default=120)
    p.add_argument("--val-images", type=int, default=12)
    p.add_argument("--height", type=int, default=512)
    p.add_argument("--width", type=int, default=1024)
    p.add_argument("--input-scale", type=float, default=0.25,
                   help="network input scale for the held-out evaluation, recorded in the checkpoint")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="config override passed to training.train (repeatable)")
    p.add_argument("--fresh", action="store_true", help="discard an earlier run and train from scratch")
    p.add_argument("--no-progress", action="store_true")
    return p


def write_synthetic_set(root: Path, args: argparse.Namespace) -> None:
    """Render the training and held-out splits once (a marker file records the sizes used)."""
    from bialign_ros.synthetic import write_cityscapes

    spec = {"train": args.train_images, "val": args.val_images, "height": args.height, "width": args.width}
    marker = root / "synthetic.json"
    if marker.is_file() and json.loads(marker.read_text()) == spec:
        return
    shutil.rmtree(root, ignore_errors=True)
    progress = not args.no_progress
    write_cityscapes(root, split="train", num_images=args.train_images, height=args.height, width=args.width,
                     seed=0, progress=progress)
    write_cityscapes(root, split="val", num_images=args.val_images, height=args.height, width=args.width,
                     seed=HELD_OUT_SEED, progress=progress)
    marker.write_text(json.dumps(spec))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = get_args_parser().parse_args(argv)
    data, run, results = args.work_dir / "data", args.work_dir / "run", args.work_dir / "heldout_eval"
    if args.fresh:
        shutil.rmtree(run, ignore_errors=True)
    write_synthetic_set(data, args)
    flags = ["--config", str(args.config), "--data-root", str(data), "--out-dir", str(run)]
    flags += [f"--set={o}" for o in args.overrides]
    if args.no_progress:
        flags.append("--no-progress")
    rc = train_cli.main(flags)
    if rc != 0:
        return rc
    eval_flags = ["--weights", str(run / "final.pt"), "--data-root", str(data), "--split", "val",
                  "--out-dir", str(results), "--scales", str(args.input_scale)]
    if args.no_progress:
        eval_flags.append("--no-progress")
    rc = evaluate.main(eval_flags)
    if rc != 0:
        return rc
    metrics = json.loads((results / "metrics.json").read_text())
    miou = metrics["miou"]
    state, meta, _ = load_checkpoint(run / "final.pt")
    training = {**meta.training, "input_scale": args.input_scale, "heldout_miou": miou,
                "heldout_pixel_accuracy": metrics["pixel_accuracy"]}
    save_checkpoint(args.out, state, dataclasses.replace(meta, training=training))
    shown = "n/a" if miou is None else f"{100 * miou:.1f}%"
    print(f"demo weights: {args.out} (held-out synthetic mIoU {shown} on {args.val_images} frames at "
          f"input scale {args.input_scale}; details in {results})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
