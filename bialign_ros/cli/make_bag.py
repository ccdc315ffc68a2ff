"""``bialign_make_bag``: turn a folder of frames (and label images) into a rosbag2 bag.

Cityscapes folders (``leftImg8bit/<split>`` or ``leftImg8bit_sequence/<split>`` with
``gtFine/<split>``) and plain folders of PNG/JPEG frames are read; see
:mod:`bialign_ros.bags.make_bag`.
"""

from __future__ import annotations

import argparse
import sys
from decimal import Decimal
from pathlib import Path

from bialign_ros.bags.io import STORAGES, BagError
from bialign_ros.bags.make_bag import DEFAULT_RATE, DEFAULT_START_NS, IMAGE_FORMATS, make_bag
from bialign_ros.class_table import read_classes_yaml

PROG = "bialign_make_bag"


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of bialign_make_bag."""
    p = argparse.ArgumentParser(prog=PROG, description="Write a folder of frames as a rosbag2 bag.")
    p.add_argument("--images", required=True, type=Path, help="folder of frames (searched recursively)")
    p.add_argument("--labels", type=Path,
                   help="folder of label images: Cityscapes gtFine (label IDs) or PNGs of the same "
                        "relative paths and stems holding train IDs (or --classes label values)")
    p.add_argument("--classes", type=Path,
                   help="classes.yaml of one's own data set: the label PNGs hold its label values")
    p.add_argument("--out", required=True, type=Path, help="bag directory to create")
    p.add_argument("--rate", type=float, default=DEFAULT_RATE,
                   help=f"frames per second (default {DEFAULT_RATE:g})")
    p.add_argument("--topic", default="/camera/image", help="image topic (default /camera/image)")
    p.add_argument("--gt-topic", default="/camera/labels", help="ground-truth topic (default /camera/labels)")
    p.add_argument("--storage", default="mcap", choices=list(STORAGES), help="bag storage (default mcap)")
    p.add_argument("--format", default="raw", choices=IMAGE_FORMATS,
                   help="raw: sensor_msgs/Image rgb8 on TOPIC; jpeg/png: CompressedImage on TOPIC/compressed")
    p.add_argument("--start-time", type=Decimal, default=Decimal(DEFAULT_START_NS) / 10**9,
                   help="stamp of the first frame in seconds since the epoch (default: a fixed time)")
    p.add_argument("--frame-id", default="camera", help="header.frame_id of every message")
    p.add_argument("--limit", type=int, default=0, help="write only the first N frames (0: all)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = build_parser().parse_args(argv)
    try:
        classes = None if args.classes is None else read_classes_yaml(args.classes)
        summary = make_bag(args.images, args.out, args.labels, classes, limit=args.limit,
                           progress=not args.no_progress, rate=args.rate, topic=args.topic,
                           gt_topic=args.gt_topic, storage=args.storage, image_format=args.format,
                           start_ns=int(args.start_time * 10**9), frame_id=args.frame_id)
    except (BagError, ValueError, OSError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    gt = f", {summary.ground_truth} label images on {summary.gt_topic}" if summary.ground_truth else \
        " (no label images)"
    print(f"wrote {summary.path} ({args.storage}): {summary.frames} frames on {summary.image_topic}{gt} "
          f"at {args.rate:g} Hz")
    return 0


if __name__ == "__main__":
    sys.exit(main())
