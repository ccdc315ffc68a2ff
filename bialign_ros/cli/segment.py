"""``bialign_segment``: segment image files and write labels, edges and overlays as PNG.

Per image ``<stem>``: ``<stem>_labels.png`` (train IDs), ``<stem>_edges.png`` (uint8,
round(255 * p)), ``<stem>_overlay.png``, ``<stem>_confidence.png`` (uint8, round(255 * the label's
softmax probability)) and ``<stem>_free_space.png`` (255/0); ``--color`` adds ``<stem>_color.png``. Outputs have
the image's own resolution and the bytes the node publishes for the same frame
(:mod:`bialign_ros.outputs`).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from tqdm import tqdm

from bialign_ros.checkpoint import CheckpointError
from bialign_ros.classes import no_free_space_note
from bialign_ros.ground_outputs import segmenter_work
from bialign_ros.image_files import read_rgb, write_png
from bialign_ros.outputs import OutputSettings, render_outputs
from bialign_ros.segmenter import DEVICES, PRECISIONS, Segmenter


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of bialign_segment."""
    p = argparse.ArgumentParser(prog="bialign_segment", description="Segment images with BiAlignNet.")
    p.add_argument("images", nargs="+", type=Path, help="image files (png, jpg, ...)")
    p.add_argument("--weights", required=True, type=Path,
                   help="bialign_ros checkpoint (.pt) or export (.onnx, .engine)")
    p.add_argument("--out-dir", required=True, type=Path, help="directory for the output PNGs")
    p.add_argument("--device", default="auto", help=f"one of {', '.join(DEVICES)} (default auto)")
    p.add_argument("--precision", default="auto", choices=PRECISIONS)
    p.add_argument("--input-scale", type=float, default=1.0,
                   help="resize the network input by this factor; outputs keep the image's size")
    p.add_argument("--alpha", type=float, default=0.5, help="overlay colour weight in [0, 1]")
    p.add_argument("--color", action="store_true", help="also write <stem>_color.png")
    p.add_argument("--free-space-classes", nargs="+", default=list(OutputSettings.free_space_classes),
                   metavar="CLASS", help="class names that are free space in <stem>_free_space.png "
                   f"(default: {' '.join(OutputSettings.free_space_classes)}, if the model has it)")
    p.add_argument("--free-space-min-confidence", type=float, default=OutputSettings.free_space_min_confidence,
                   help="confidence a free-space pixel needs (default %(default)s)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    try:
        seg = Segmenter.from_checkpoint(args.weights, device=args.device, precision=args.precision,
                                        input_scale=args.input_scale)
    except (CheckpointError, ValueError) as exc:
        print(f"bialign_segment: error: {exc}", file=sys.stderr)
        return 2
    args.out_dir.mkdir(parents=True, exist_ok=True)
    wanted = ("labels", "edges", "overlay", "confidence", "free_space", *(("color",) if args.color else ()))
    settings = OutputSettings(args.alpha, tuple(args.free_space_classes), args.free_space_min_confidence)
    try:
        settings = settings.for_model(seg.meta.class_names)
    except ValueError as exc:
        print(f"bialign_segment: error: --free-space-classes: {exc}", file=sys.stderr)
        return 2
    note = no_free_space_note(args.free_space_classes, seg.meta.class_names)
    if note:
        print(f"bialign_segment: note: --free-space-classes: {note}", file=sys.stderr)
    failures = 0
    for path in tqdm(args.images, desc="segment", unit="img", disable=len(args.images) < 2):
        try:
            image = read_rgb(path)
        except ValueError as exc:
            print(f"bialign_segment: skipping: {exc}", file=sys.stderr)
            failures += 1
            continue
        result = seg.segment(image, **segmenter_work(wanted))
        outputs = render_outputs(seg, image, result, wanted, settings)
        for output in outputs:
            write_png(args.out_dir / f"{path.stem}_{output.name}.png", output.array)
    done = len(args.images) - failures
    print(f"segmented {done} image(s) on {seg.device} ({seg.precision}); outputs in {args.out_dir}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
