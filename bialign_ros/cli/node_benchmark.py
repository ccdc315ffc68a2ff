"""Node benchmark: camera frames at a fixed rate through the bialign node over ROS, end to end.

Times the bare Segmenter before, between the slices of (``--slices``) and after the node's run,
runs the node in its own process fed
by a camera publisher in this one (with ``--cameras N``: one camera first, then one node
serving N cameras), and reports the frames the node received, processed and dropped, its
delivered rate, end-to-end latency and the ratio of the delivered rate to the bare Segmenter
rate (near 1 when the ROS plumbing costs almost nothing). ``--outputs all`` subscribes to every
output (with camera_info and a depth image per frame for the grid and the points), as a planner,
RViz and a recorder together would; the node computes optional outputs only while subscribed, so
the ratio then includes what rendering, publishing and receiving them cost, against the bare
Segmenter computing the same maps (edges; confidence for the confidence, free space, grid and
points). With N cameras also each camera's rate, their sum and its ratio to the one-camera rate,
which is what batching buys.

This module parses the command line; the work is done by :mod:`bialign_ros.bench.node_bench`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from bialign_ros.bench.node_bench import NodeBenchOptions, run_node_benchmark
from bialign_ros.bench.node_command import SUBSCRIBABLE, outputs_arg
from bialign_ros.bench.report import print_node_benchmark
from bialign_ros.qos import RELIABILITY_POLICIES
from bialign_ros.ros_domains import domain_ids, pick_domain_id
from bialign_ros.weights import untrained_checkpoint


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of the node benchmark."""
    p = argparse.ArgumentParser(prog="bialign_node_benchmark", description=__doc__.splitlines()[0])
    p.add_argument("--weights", default="",
                   help="bialign_ros checkpoint or exported .onnx file (empty: untrained weights)")
    p.add_argument("--width", type=int, default=2048)
    p.add_argument("--height", type=int, default=1024)
    p.add_argument("--rate", type=float, default=30.0, help="camera rate in Hz, of each camera (default 30)")
    p.add_argument("--duration", type=float, default=20.0, help="seconds of publishing, per run (default 20)")
    p.add_argument("--input-scale", type=float, default=0.25, help="node input_scale (default 0.25)")
    p.add_argument("--cameras", type=int, default=1,
                   help="cameras served by one node (default 1); above 1, a one-camera run comes first for "
                        "comparison")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto")
    p.add_argument("--backend", default="auto", help="node and bare Segmenter backend (default: from the file)")
    p.add_argument("--compile", action="store_true",
                   help="torch backend: the node (parameter compile) and the bare Segmenter run torch.compile")
    p.add_argument("--inference-streams", type=int, default=1,
                   help="node inference_streams: frames in inference at once (default 1); the bare Segmenter "
                        "runs one frame at a time on every core")
    p.add_argument("--reliability", default="reliable", choices=tuple(RELIABILITY_POLICIES),
                   help="reliability of the camera publisher (the node's QoS stays at its default)")
    p.add_argument("--outputs", type=outputs_arg, default=(), metavar="labels|all|NAME,...",
                   help=f"outputs subscribed: labels (default), all, or labels plus these of "
                        f"{', '.join(SUBSCRIBABLE)}")
    p.add_argument("--slices", type=int, default=3,
                   help="slices of the run; the bare Segmenter is timed before, between and after them, while "
                        "the camera pauses, and each slice is held against the rates on either side (default 3)")
    p.add_argument("--bare-frames", type=int, default=10, help="calls timed for each bare Segmenter rate")
    ids = domain_ids("benchmarks")
    p.add_argument("--domain-id", type=int, default=None,
                   help=f"ROS domain of the run (default: one of {ids.start}-{ids.stop - 1})")
    p.add_argument("--json", type=Path, help="also write the results to this file")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = build_parser().parse_args(argv)
    if args.cameras < 1:
        raise SystemExit(f"--cameras must be at least 1, got {args.cameras}")
    if args.inference_streams < 1:
        raise SystemExit(f"--inference-streams must be at least 1, got {args.inference_streams}")
    if args.slices < 1:
        raise SystemExit(f"--slices must be at least 1, got {args.slices}")
    with tempfile.TemporaryDirectory() as tmp:
        weights = args.weights or str(untrained_checkpoint(Path(tmp) / "untrained_bialign_dfnet2.pt"))
        opts = NodeBenchOptions(
            weights=weights, width=args.width, height=args.height, rate=args.rate, duration=args.duration,
            input_scale=args.input_scale, cameras=args.cameras, device=args.device, precision=args.precision,
            backend=args.backend, compile=args.compile, inference_streams=args.inference_streams,
            reliability=args.reliability, bare_frames=args.bare_frames,
            outputs=args.outputs, slices=args.slices,
            domain_id=pick_domain_id("benchmarks") if args.domain_id is None else args.domain_id)
        try:
            record = run_node_benchmark(opts)
        except RuntimeError as exc:
            raise SystemExit(f"bialign_node_benchmark: {exc}") from None
    print_node_benchmark(record, args.reliability, args.duration)
    if args.json:
        args.json.write_text(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
