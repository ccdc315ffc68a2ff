"""``bialign_synth``: write a procedural street-scene dataset in the Cityscapes layout.

Example::

    bialign_synth --out data/synth --split train --num 200
    bialign_synth --out data/synth --split val --num 50 --height 256 --width 512
"""

from __future__ import annotations

import argparse
import sys

from bialign_ros.synthetic import write_cityscapes


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface of ``bialign_synth``."""
    parser = argparse.ArgumentParser(
        prog="bialign_synth",
        description="Render procedural street scenes with exact labels in the Cityscapes folder layout "
        "(leftImg8bit/ and gtFine/ with labelIds, labelTrainIds, instanceIds and color images).",
    )
    parser.add_argument("--out", required=True, help="dataset root to write into (created if missing)")
    parser.add_argument(
        "--split", default="train", help="split folder name, e.g. train, val or test (default: train)"
    )
    parser.add_argument("--num", type=int, default=20, help="number of images to write (default: 20)")
    parser.add_argument("--height", type=int, default=512, help="image height in pixels (default: 512)")
    parser.add_argument("--width", type=int, default=1024, help="image width in pixels (default: 1024)")
    parser.add_argument(
        "--seed", type=int, default=0, help="base seed; splits and images derive their own (default: 0)"
    )
    parser.add_argument("--city", default=None, help="city name in the file names (default: one per split)")
    parser.add_argument(
        "--sequence",
        action="store_true",
        help="write driving sequences of 30 consecutive frames instead of independent scenes",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the tool; returns the process exit code."""
    args = build_parser().parse_args(argv)
    try:
        paths = write_cityscapes(
            args.out,
            split=args.split,
            num_images=args.num,
            height=args.height,
            width=args.width,
            seed=args.seed,
            city=args.city,
            sequence=args.sequence,
            progress=not args.quiet,
        )
    except (ValueError, TypeError, OSError) as exc:
        print(f"bialign_synth: error: {exc}", file=sys.stderr)
        return 2
    folders = sorted({str(p.parent) for p in paths})
    print(
        f"wrote {len(paths)} images of {args.height}x{args.width} to {args.out} "
        f"(images in {', '.join(folders) or 'nothing'}; labels under gtFine/{args.split})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
