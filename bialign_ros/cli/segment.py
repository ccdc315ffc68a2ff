"""``bialign_segment``: segment image files and write labels, edges and overlays as PNG.

Per image ``<stem>``: ``<stem>_labels.png`` (train IDs), ``<stem>_edges.png`` (uint8,
round(255 * p)) and ``<stem>_overlay.png``; ``--color`` adds ``<stem>_color.png``. Outputs have
the image's own resolution.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from bialign_ros.checkpoint import CheckpointError
from bialign_ros.segmenter import DEVICES, PRECISIONS, Segmenter


def read_rgb(path: Path) -> np.ndarray:
    """Read an image file as H x W x 3 uint8 RGB (grey and alpha images are converted)."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"cannot read image {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def write_png(path: Path, image: np.ndarray) -> None:
    """Write a mono or RGB uint8 image as PNG."""
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(str(path), image):
        raise OSError(f"cannot write {path}")


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of bialign_segment."""
    p = argparse.ArgumentParser(prog="bialign_segment", description="Segment images with BiAlignNet.")
    p.add_argument("images", nargs="+", type=Path, help="image files (png, jpg, ...)")
    p.add_argument("--weights", required=True, type=Path, help="bialign_ros checkpoint (.pt)")
    p.add_argument("--out-dir", required=True, type=Path, help="directory for the output PNGs")
    p.add_argument("--device", default="auto", help=f"one of {', '.join(DEVICES)} (default auto)")
    p.add_argument("--precision", default="auto", choices=PRECISIONS)
    p.add_argument("--input-scale", type=float, default=1.0,
                   help="resize the network input by this factor; outputs keep the image's size")
    p.add_argument("--alpha", type=float, default=0.5, help="overlay colour weight in [0, 1]")
    p.add_argument("--color", action="store_true", help="also write <stem>_color.png")
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
    failures = 0
    for path in tqdm(args.images, desc="segment", unit="img", disable=len(args.images) < 2):
        try:
            image = read_rgb(path)
        except ValueError as exc:
            print(f"bialign_segment: skipping: {exc}", file=sys.stderr)
            failures += 1
            continue
        res = seg.segment(image)
        stem = args.out_dir / path.stem
        write_png(stem.with_name(f"{path.stem}_labels.png"), res.labels)
        write_png(stem.with_name(f"{path.stem}_edges.png"), res.edges_u8())
        write_png(stem.with_name(f"{path.stem}_overlay.png"), seg.overlay(image, res.labels, args.alpha))
        if args.color:
            write_png(stem.with_name(f"{path.stem}_color.png"), seg.colorize(res.labels))
    done = len(args.images) - failures
    print(f"segmented {done} image(s) on {seg.device} ({seg.precision}); outputs in {args.out_dir}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
