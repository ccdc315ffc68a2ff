"""ROS demo: a simulated camera feeds the bialign node; its overlays are collected and saved.

Starts ``bialign_camera_sim`` (a synthetic street at ``--rate``) and the node as separate
processes with the shipped transport profile, receives ``segmentation/overlay`` and
``segmentation/labels`` over ROS, writes the overlay frames and one contact sheet into
``--out-dir``, prints the input/output rates and latency, then stops both processes.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor

from bialign_ros.bench.node_command import NodeSpec, node_command
from bialign_ros.cli.output_collector import OutputCollector, OutputSummary
from bialign_ros.cli.processes import ChildProcess, python_module, ros_env
from bialign_ros.demo import default_input_scale
from bialign_ros.image_files import write_png
from bialign_ros.ros_domains import domain_ids, pick_domain_id
from bialign_ros.transport import use_transport_profile
from bialign_ros.weights import untrained_checkpoint

BANNER = "=" * 78
THUMB_WIDTH = 480


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of the ROS demo."""
    p = argparse.ArgumentParser(prog="bialign_ros_demo", description=__doc__.splitlines()[0])
    p.add_argument("--weights", default="", help="bialign_ros checkpoint (empty: untrained weights)")
    p.add_argument("--out-dir", type=Path, default=Path("demo_out"))
    p.add_argument("--frames", type=int, default=12, help="overlay frames to collect (default 12)")
    p.add_argument("--rate", type=float, default=10.0, help="camera rate in Hz (default 10)")
    p.add_argument("--width", type=int, default=1024)
    p.add_argument("--height", type=int, default=512)
    p.add_argument("--input-scale", type=float, default=None,
                   help="node input_scale (default: the scale the weights were trained for, else 1)")
    p.add_argument("--timeout", type=float, default=300.0, help="give up after this many seconds")
    ids = domain_ids("tools")
    p.add_argument("--domain-id", type=int, default=None,
                   help=f"ROS domain of the demo (default: one of {ids.start}-{ids.stop - 1})")
    return p


def contact_sheet(images: list[np.ndarray], columns: int = 4) -> np.ndarray:
    """Tile RGB ``images`` (same size) into one RGB sheet, each scaled to THUMB_WIDTH wide."""
    h, w = images[0].shape[:2]
    tw, th = THUMB_WIDTH, max(1, round(h * THUMB_WIDTH / w))
    columns = min(columns, len(images))
    rows = math.ceil(len(images) / columns)
    sheet = np.zeros((rows * th, columns * tw, 3), np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        sheet[r * th:(r + 1) * th, c * tw:(c + 1) * tw] = cv2.resize(image, (tw, th), interpolation=cv2.INTER_AREA)
    return sheet


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = build_parser().parse_args(argv)
    out = args.out_dir
    frames_dir = out / "overlays"
    frames_dir.mkdir(parents=True, exist_ok=True)
    weights = args.weights
    if not weights:
        weights = str(untrained_checkpoint(out / "untrained_bialign_dfnet2.pt"))
        print(f"{BANNER}\nWARNING: no weights given: running UNTRAINED weights, so the labels are noise.\n"
              f"Pass trained weights with: make demo WEIGHTS=path/to/checkpoint.pt\n{BANNER}", flush=True)
    if args.input_scale is None:
        args.input_scale = default_input_scale(weights)
    use_transport_profile()
    domain = pick_domain_id("tools") if args.domain_id is None else args.domain_id
    env = ros_env(domain)
    node = ChildProcess(node_command(NodeSpec(weights, input_scale=args.input_scale)), env)
    camera = ChildProcess(python_module("bialign_ros.cli.camera_sim", "--rate", str(args.rate),
                                        "--width", str(args.width), "--height", str(args.height),
                                        "--frames", str(min(args.frames, 30))), env)
    rclpy.init(domain_id=domain)
    collector = OutputCollector(keep_overlays=args.frames)
    executor = SingleThreadedExecutor()
    executor.add_node(collector)
    started = time.monotonic()
    ok = False
    try:
        while len(collector.overlays) < args.frames and time.monotonic() - started < args.timeout:
            executor.spin_once(timeout_sec=0.1)
            if node.proc.poll() is not None or camera.proc.poll() is not None:
                break
        report = dict(collector.report)
        ok = len(collector.overlays) == args.frames
    finally:
        executor.shutdown()
        collector.destroy_node()
        rclpy.try_shutdown()
        codes = {"camera": camera.interrupt(), "node": node.interrupt()}
    (out / "node.log").write_text(node.output + "\n")
    (out / "camera_sim.log").write_text(camera.output + "\n")
    if not ok:
        print(f"collected {len(collector.overlays)} of {args.frames} overlays; exit codes {codes}; "
              f"see {out / 'node.log'}", file=sys.stderr)
        return 1
    for i, (_, image) in enumerate(sorted(collector.overlays, key=lambda item: item[0])):
        write_png(frames_dir / f"overlay_{i:03d}.png", image)
    sheet_path = out / "contact_sheet.png"
    write_png(sheet_path, contact_sheet([image for _, image in sorted(collector.overlays, key=lambda x: x[0])]))
    summary = OutputSummary.of(collector.arrivals)
    print(f"camera {args.width}x{args.height} at {args.rate:g} Hz -> node (input_scale {args.input_scale:g}): "
          f"input {report.get('input_rate_hz', float('nan')):.2f} Hz, output {summary.rate_hz:.2f} Hz "
          f"({report.get('frames_dropped', 0):.0f} frames dropped, latest frame wins)")
    print(f"end-to-end latency (camera stamp to arrival here): {summary.latency_text()}; "
          f"node latency mean {report.get('latency_mean_ms', float('nan')):.1f} ms, "
          f"p99 {report.get('latency_p99_ms', float('nan')):.1f} ms")
    print(f"wrote {len(collector.overlays)} overlays to {frames_dir} and {sheet_path}; "
          f"stopped camera and node (exit codes {codes['camera']}, {codes['node']})")
    return 0 if codes == {"camera": 0, "node": 0} else 1


if __name__ == "__main__":
    sys.exit(main())
