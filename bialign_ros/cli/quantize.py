"""``bialign_quantize``: static int8 quantisation for ONNX Runtime, calibrated on your own frames.

Images under ``--calib`` (searched recursively, sorted by path) are resized to ``--height`` x
``--width``. The last ``--held-out`` of them are not used for calibration: the CLI reports the
int8 labels' agreement with the fp32 export on them, and stores it in the file's metadata.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from bialign_ros.checkpoint import CheckpointError
from bialign_ros.image_files import find_images
from bialign_ros.quantize import (
    CALIBRATION_METHODS,
    DEFAULT_FLOAT_PARTS,
    FLOAT_PARTS,
    WEIGHT_BITS,
    quantize_model,
    read_frames,
)


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of bialign_quantize."""
    p = argparse.ArgumentParser(prog="bialign_quantize", description=__doc__.splitlines()[0])
    p.add_argument("--weights", required=True, type=Path, help="bialign_ros checkpoint (.pt)")
    p.add_argument("--calib", required=True, type=Path, help="directory of calibration images (png, jpg)")
    p.add_argument("--out", required=True, type=Path, help="output ONNX file, e.g. W.int8.onnx")
    p.add_argument("--height", type=int, default=512,
                   help="calibration height (multiple of 8): where the network will run, the camera's "
                        "height times input_scale; the file serves every size, and agrees with fp32 a little "
                        "less far below it (a quarter of it)")
    p.add_argument("--width", type=int, default=1024,
                   help="calibration width (multiple of 8), likewise")
    p.add_argument("--static", action="store_true",
                   help="fix the input size to --height x --width (default: any multiple of 8)")
    p.add_argument("--max-calib", type=int, default=16, help="use at most this many calibration frames")
    p.add_argument("--held-out", type=int, default=4,
                   help="frames kept out of calibration to measure agreement")
    p.add_argument("--float", dest="float_parts", action="append", choices=(*FLOAT_PARTS, "none"),
                   default=None,
                   help="part kept in floating point (repeatable; default: flow and logits; "
                        "'none': all int8)")
    p.add_argument("--calibration", choices=tuple(CALIBRATION_METHODS), default="percentile",
                   help="activation ranges: 99.99th percentile (default) or min/max of the frames")
    p.add_argument("--weight-bits", choices=("auto", *map(str, WEIGHT_BITS)), default="auto",
                   help="bits per weight: 7 is exact on every x86 CPU; 8 only on CPUs with VNNI or AMX, "
                        "where ONNX Runtime's int8 products cannot saturate; auto (default): 8 if this "
                        "CPU has VNNI, else 7 (quantise with 7 for a robot whose CPU has none)")
    p.add_argument("--threads", type=int, default=0,
                   help="ONNX Runtime threads for the check (0: physical cores)")
    return p


def float_parts(chosen: list[str] | None) -> tuple[str, ...]:
    """The ``--float`` choices as a tuple: the default parts when none is given, nothing for ``none``."""
    if chosen is None:
        return DEFAULT_FLOAT_PARTS
    return () if "none" in chosen else tuple(dict.fromkeys(chosen))


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    from bialign_ros.backends.torch_runner import load_inference_model

    try:
        if args.max_calib < 1 or args.held_out < 0:
            raise ValueError("--max-calib must be at least 1 and --held-out at least 0")
        model, meta = load_inference_model(args.weights)
        paths = find_images(args.calib)
        if len(paths) <= args.held_out:
            raise ValueError(f"{len(paths)} image(s) under {args.calib}: need more than "
                             f"--held-out {args.held_out}")
        split = len(paths) - args.held_out
        calib = read_frames(paths[:split][: args.max_calib], args.height, args.width)
        held_out = read_frames(paths[split:], args.height, args.width)
        report = quantize_model(model, meta, args.out, calib, held_out, dynamic=not args.static,
                                float_parts=float_parts(args.float_parts), method=args.calibration,
                                threads=args.threads,
                                weight_bits=None if args.weight_bits == "auto" else int(args.weight_bits))
    except (CheckpointError, ValueError) as exc:
        print(f"bialign_quantize: error: {exc}", file=sys.stderr)
        return 2
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
