"""``bialign_bag_eval``: evaluate a checkpoint on every frame of a rosbag2 bag (sqlite3 or MCAP).

Writes ``OUT/metrics.json``, ``OUT/outputs.mcap`` (input frames with every image output of the node),
``OUT/report.html`` and the report's PNG plots. Exit codes: 0 done, 2 bad arguments, bag, topic
or weights, 3 the bag is truncated or damaged (everything readable was still evaluated).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from bialign_ros.bags.evaluate import EvalOptions, evaluate_bag
from bialign_ros.bags.io import BagError
from bialign_ros.checkpoint import CheckpointError
from bialign_ros.outputs import OutputSettings
from bialign_ros.segmenter import BACKENDS, DEVICES, PRECISIONS

PROG = "bialign_bag_eval"


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of bialign_bag_eval."""
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0].split(": ", 1)[1])
    p.add_argument("--bag", required=True, type=Path, help="bag directory or .mcap/.db3 file")
    p.add_argument("--image-topic", required=True,
                   help="sensor_msgs/Image or CompressedImage topic, e.g. /camera/image")
    p.add_argument("--gt-topic", help="ground-truth topic: mono8 Image of train IDs (255 = ignore)")
    p.add_argument("--weights", required=True, type=Path,
                   help="bialign_ros checkpoint (.pt) or exported model (.onnx, .engine)")
    p.add_argument("--out-dir", required=True, type=Path)
    p.add_argument("--device", default="auto", help=f"one of {', '.join(DEVICES)} (default auto)")
    p.add_argument("--precision", choices=PRECISIONS,
                   help="inference precision (default: fp32 for a .pt checkpoint, as training.evaluate; "
                        "an exported model's own precision)")
    p.add_argument("--backend", default="auto", choices=BACKENDS,
                   help="inference backend (default auto: from the weights file)")
    p.add_argument("--input-scale", type=float, default=1.0,
                   help="resize the network input by this factor; outputs keep the frame's size")
    p.add_argument("--stamp-tolerance-ms", type=float, default=2.0,
                   help="pair ground truth with the frame of the nearest header stamp within this "
                        "(default 2)")
    p.add_argument("--boundary-tolerance-px", type=float, default=3.0,
                   help="distance within which a boundary pixel counts as found (default 3)")
    p.add_argument("--edge-threshold", type=float, default=0.5, help="edge probability that counts as edge")
    p.add_argument("--free-space-classes", nargs="+", default=list(OutputSettings.free_space_classes),
                   metavar="CLASS",
                   help="class names of the model that are free space (default: road, if the model has it)")
    p.add_argument("--free-space-min-confidence", type=float, default=OutputSettings.free_space_min_confidence,
                   help="confidence a free-space pixel needs (default %(default)s)")
    p.add_argument("--samples", type=int, default=6, help="frames shown in the report (default 6)")
    p.add_argument("--max-frames", type=int, default=0, help="evaluate only the first N frames (0: all)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    options = EvalOptions(
        image_topic=args.image_topic, gt_topic=args.gt_topic, device=args.device, precision=args.precision,
        backend=args.backend, input_scale=args.input_scale, stamp_tolerance_ms=args.stamp_tolerance_ms,
        boundary_tolerance_px=args.boundary_tolerance_px, edge_threshold=args.edge_threshold,
        samples=args.samples, max_frames=args.max_frames, progress=not args.no_progress,
        free_space_classes=tuple(args.free_space_classes), free_space_min_confidence=args.free_space_min_confidence)
    try:
        result = evaluate_bag(args.bag, args.weights, args.out_dir, options)
    except (BagError, CheckpointError, ValueError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    m = result.metrics
    frames = m["frames"]
    line = f"{frames['processed']} frames evaluated"
    if "miou" in m:
        miou = "n/a" if m["miou"] is None else f"{100 * m['miou']:.2f}%"
        line += (f", {frames['with_ground_truth']} with ground truth: mIoU {miou}, boundary F "
                 f"{100 * m['boundary']['labels']['f_score']:.1f}% (labels) "
                 f"{100 * m['boundary']['edges']['f_score']:.1f}% (edges)")
    if m["latency"]:
        line += f"; latency mean {m['latency']['mean_ms']:.1f} ms, p99 {m['latency']['p99_ms']:.1f} ms"
    print(f"{line}; results in {args.out_dir}")
    for note in m["notes"]:
        print(f"{PROG}: note: {note}", file=sys.stderr)
    if result.damage:
        print(f"{PROG}: error: {result.damage}; the {frames['processed']} readable frames were evaluated",
              file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
