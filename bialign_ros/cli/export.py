"""``bialign_export``: write a checkpoint's inference graph as ONNX (ONNX Runtime, TensorRT) or TorchScript.

The file takes uint8 RGB images (N x H x W x 3) and returns labels and edges at the same size;
the class table and normalisation travel in it, so ``--weights FILE.onnx`` works wherever a
checkpoint does. After writing an ONNX file the CLI runs it once on a synthetic street frame and
prints its label agreement with PyTorch (skip with ``--no-check``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from bialign_ros.checkpoint import CheckpointError
from bialign_ros.export import EXPORT_FORMATS, export_onnx, export_torchscript

LOG = logging.getLogger("bialign_export")


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of bialign_export."""
    p = argparse.ArgumentParser(prog="bialign_export", description=__doc__.splitlines()[0])
    p.add_argument("--weights", required=True, type=Path, help="bialign_ros checkpoint (.pt)")
    p.add_argument("--format", choices=EXPORT_FORMATS, default="onnx")
    p.add_argument("--out", required=True, type=Path, help="output file (.onnx or .ts)")
    p.add_argument("--height", type=int, default=512, help="input height (the traced size when --dynamic)")
    p.add_argument("--width", type=int, default=1024, help="input width (the traced size when --dynamic)")
    p.add_argument("--dynamic", action="store_true",
                   help="ONNX: any height and width that are multiples of 8 (16 to 8192)")
    p.add_argument("--fp16", action="store_true", help="ONNX: half-precision weights and compute (GPUs)")
    p.add_argument("--space-to-depth", action="store_true",
                   help="ONNX: 12-channel form of the first convolutions (faster in int8 and PyTorch, "
                        "slower in ONNX Runtime fp32 on CPUs)")
    p.add_argument("--no-check", action="store_true", help="do not compare the ONNX file with PyTorch")
    return p


def check_against_torch(model, meta, path: Path, height: int, width: int) -> float:
    """Label agreement of the ONNX file with the PyTorch graph on one synthetic frame."""
    import torch

    from bialign_ros.backends.ort_runner import OrtRunner
    from bialign_ros.backends.torch_runner import TorchRunner
    from bialign_ros.quantize import label_agreement
    from bialign_ros.synthetic import render_scene

    frame = render_scene(0, height, width).image
    return label_agreement(TorchRunner(model, meta, torch.device("cpu")), OrtRunner(path), [frame])


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    from bialign_ros.backends.torch_runner import load_inference_model

    try:
        model, meta = load_inference_model(args.weights)
        if args.format == "torchscript":
            if args.dynamic or args.fp16:
                raise ValueError("--dynamic and --fp16 apply to ONNX exports only")
            out = export_torchscript(model, meta, args.out, args.height, args.width)
        else:
            out = export_onnx(model, meta, args.out, args.height, args.width, dynamic=args.dynamic,
                              fp16=args.fp16, space_to_depth=args.space_to_depth)
    except (CheckpointError, ValueError) as exc:
        print(f"bialign_export: error: {exc}", file=sys.stderr)
        return 2
    size = f"{args.height}x{args.width}" + (" traced, dynamic size (multiples of 8)" if args.dynamic else "")
    print(f"wrote {out} ({args.format}, {'fp16' if args.fp16 else 'fp32'}, {size})")
    if args.format == "onnx" and not args.no_check and not args.fp16:
        agree = check_against_torch(model, meta, out, args.height, args.width)
        print(f"check: ONNX Runtime labels agree with PyTorch on {100 * agree:.3f}% of a synthetic "
              f"{args.width}x{args.height} frame")
    return 0


if __name__ == "__main__":
    sys.exit(main())
