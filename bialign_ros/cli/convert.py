"""``bialign_convert SRC DST [--arch bialign_dfnet2]``: authors' files -> bialign_ros checkpoint."""

from __future__ import annotations

import argparse
import sys

from bialign_ros.convert import ConversionError, convert
from bialign_ros.model import ARCHITECTURES


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of bialign_convert."""
    p = argparse.ArgumentParser(
        prog="bialign_convert",
        description="Convert the authors' BiAlignNet checkpoint (or ImageNet DFNet backbone file) "
                    "into a self-describing bialign_ros checkpoint.")
    p.add_argument("src", help="authors' .pth file (full model with 'state_dict', or DFNet backbone)")
    p.add_argument("dst", help="output .pt checkpoint")
    p.add_argument("--arch", choices=ARCHITECTURES, default=None,
                   help="architecture the file must hold (default: detected from its keys)")
    p.add_argument("--trust-source", action="store_true",
                   help="allow full unpickling of SRC (needed for files that store Python objects)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = build_parser().parse_args(argv)
    try:
        meta = convert(args.src, args.dst, args.arch, trust=args.trust_source)
    except ConversionError as exc:
        print(f"bialign_convert: error: {exc}", file=sys.stderr)
        return 1
    kind = "backbone only (heads untrained)" if meta.training.get("backbone_only") else "full model"
    print(f"wrote {args.dst}: {meta.arch}, {meta.num_classes} classes, {kind}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
