"""``make demo``: synthetic street frames through the model, with overlays written to disk.

Uses the weights given with ``--weights``; otherwise untrained weights, with a clear warning
that the labels are noise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bialign_ros.checkpoint import load_checkpoint
from bialign_ros.cli import segment as segment_cli
from bialign_ros.image_files import write_png
from bialign_ros.synthetic import render_scene
from bialign_ros.weights import untrained_checkpoint

BANNER = "=" * 78


def default_input_scale(weights: str | Path) -> float:
    """The input scale both demos run at unless told otherwise: the scale the weights were trained
    for (recorded in bialign_ros checkpoints), else 1 (the network sees the frame as it is)."""
    if Path(weights).suffix != ".pt":
        return 1.0
    return float(load_checkpoint(weights)[1].training.get("input_scale", 1.0))


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of the demo."""
    p = argparse.ArgumentParser(prog="bialign_demo", description=__doc__.splitlines()[0])
    p.add_argument("--weights", default="", help="bialign_ros checkpoint (empty: untrained weights)")
    p.add_argument("--out-dir", type=Path, default=Path("demo_out"))
    p.add_argument("--frames", type=int, default=4)
    p.add_argument("--height", type=int, default=512)
    p.add_argument("--width", type=int, default=1024)
    p.add_argument("--input-scale", type=float, default=None,
                   help="network input scale (default: the scale the weights were trained for, else 1)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = build_parser().parse_args(argv)
    out = args.out_dir
    frames_dir = out / "frames"
    frames_dir.mkdir(parents=True, exist_ok=True)
    weights = args.weights
    if not weights:
        weights = str(untrained_checkpoint(out / "untrained_bialign_dfnet2.pt"))
        print(f"{BANNER}\nWARNING: no WEIGHTS given: running UNTRAINED weights, so the labels are noise.\n"
              f"Pass trained weights with: make demo WEIGHTS=path/to/checkpoint.pt\n{BANNER}")
    if args.input_scale is None:
        args.input_scale = default_input_scale(weights)
    paths = []
    for i in range(args.frames):
        frame = render_scene(seed=1000 + i, height=args.height, width=args.width)
        path = frames_dir / f"synthetic_{i:03d}.png"
        write_png(path, frame.image)
        paths.append(str(path))
    seg_dir = out / "segment"
    rc = segment_cli.main(["--weights", weights, "--out-dir", str(seg_dir), "--color",
                           "--input-scale", str(args.input_scale), *paths])
    if rc == 0:
        print("overlays:")
        for p in sorted(seg_dir.glob("*_overlay.png")):
            print(f"  {p}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
