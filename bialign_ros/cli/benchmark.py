"""``bialign_benchmark``: throughput and latency of the bare model and of the Segmenter end to end.

The bare model is timed from a preprocessed tensor to argmax labels; the Segmenter from a uint8
RGB NumPy image to labels and edges at the image's resolution. Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bialign_ros.checkpoint import CheckpointError
from bialign_ros.model import ARCHITECTURES
from bialign_ros.segmenter import DEVICES, PRECISIONS, Segmenter
from bialign_ros.timing import hardware_summary, latency_summary


def _sync(seg: Segmenter) -> None:
    if seg.device_obj.type == "cuda":
        torch.cuda.synchronize(seg.device_obj)


def time_bare_model(seg: Segmenter, image: np.ndarray, iters: int, warmup: int) -> dict[str, float]:
    """Time forward + argmax on an already preprocessed input."""
    x = seg.preprocess(image)
    times = []
    with torch.inference_mode():
        for i in range(warmup + iters):
            _sync(seg)
            t0 = time.perf_counter()
            logits, _ = seg.forward(x)
            logits.argmax(1)
            _sync(seg)
            if i >= warmup:
                times.append(time.perf_counter() - t0)
    return latency_summary(times)


def time_segmenter(seg: Segmenter, image: np.ndarray, iters: int, warmup: int) -> dict[str, float]:
    """Time the Segmenter end to end: uint8 image in, labels and edges (NumPy) out."""
    times = []
    for i in range(warmup + iters):
        t0 = time.perf_counter()
        seg.segment(image, edges=True)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return latency_summary(times)


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of bialign_benchmark."""
    p = argparse.ArgumentParser(prog="bialign_benchmark", description=__doc__.splitlines()[0])
    p.add_argument("--weights", type=Path, default=None,
                   help="bialign_ros checkpoint; without it untrained weights of --arch are timed")
    p.add_argument("--arch", choices=ARCHITECTURES, default="bialign_dfnet2")
    p.add_argument("--height", type=int, default=1024)
    p.add_argument("--width", type=int, default=2048)
    p.add_argument("--device", default="auto", help=f"one of {', '.join(DEVICES)}")
    p.add_argument("--precision", default="auto", choices=PRECISIONS)
    p.add_argument("--input-scale", type=float, default=1.0)
    p.add_argument("--iters", type=int, default=10, help="timed iterations per measurement")
    p.add_argument("--warmup", type=int, default=2, help="untimed iterations first")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        weights = args.weights
        if weights is None:
            from bialign_ros.weights import untrained_checkpoint

            weights = untrained_checkpoint(Path(tmp) / "untrained.pt", args.arch)
        try:
            seg = Segmenter.from_checkpoint(weights, args.device, args.precision, args.input_scale, warmup=False)
        except (CheckpointError, ValueError) as exc:
            print(f"bialign_benchmark: error: {exc}", file=sys.stderr)
            return 2
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (args.height, args.width, 3), dtype=np.uint8)
    bare = time_bare_model(seg, image, args.iters, args.warmup)
    e2e = time_segmenter(seg, image, args.iters, args.warmup)
    hw = hardware_summary()
    print(f"{seg.meta.arch} {args.width}x{args.height} (input scale {args.input_scale}) on {seg.device} "
          f"{seg.precision}, backend {seg.backend}; {hw['cpu']}, {hw['torch_threads']} threads")
    print(f"{'stage':<22}{'FPS':>8}{'mean ms':>10}{'p50 ms':>10}{'p99 ms':>10}")
    for name, r in (("model (fwd+argmax)", bare), ("segmenter end to end", e2e)):
        print(f"{name:<22}{r['fps']:>8.2f}{r['mean_ms']:>10.1f}{r['p50_ms']:>10.1f}{r['p99_ms']:>10.1f}")
    print(json.dumps({"arch": seg.meta.arch, "height": args.height, "width": args.width,
                      "input_scale": args.input_scale, "device": seg.device, "precision": seg.precision,
                      "backend": seg.backend, "hardware": hw, "model": bare, "segmenter": e2e}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
