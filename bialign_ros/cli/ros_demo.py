"""ROS demo: a simulated camera feeds the bialign node; its overlays are collected and saved.

Starts ``bialign_camera_sim`` (a synthetic street at ``--rate``) and the node as separate
processes with the shipped transport profile, receives ``segmentation/overlay`` and
``segmentation/labels`` over ROS, writes the overlay frames and one contact sheet into
``--out-dir``, prints the input/output rates and latency, then stops both processes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import rclpy
from nav_msgs.msg import OccupancyGrid
from rclpy.executors import SingleThreadedExecutor

from bialign_ros.bench.node_command import NodeSpec, node_command
from bialign_ros.cli.output_collector import OutputCollector, OutputSummary
from bialign_ros.cli.processes import ChildProcess, python_module, ros_env
from bialign_ros.demo import default_input_scale
from bialign_ros.image_files import write_png
from bialign_ros.ros_domains import domain_ids, pick_domain_id
from bialign_ros.synthetic import sequence_cameras
from bialign_ros.transport import prepare_for_large_frames
from bialign_ros.weights import untrained_checkpoint

BANNER = "=" * 78
THUMB_WIDTH = 480
SHEET_ROWS = 4
"""Frames shown in the contact sheet (overlay, confidence, grid each)."""
DEMO_SEED = 0
"""The synthetic street the simulated camera drives down."""


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


def grid_image(grid: OccupancyGrid, height: int) -> np.ndarray:
    """A bird's-eye RGB picture of an occupancy grid, ``height`` pixels high: forward up, left on the
    left; free light, occupied black, unknown mid grey."""
    cells = np.asarray(grid.data, np.int8).reshape(grid.info.height, grid.info.width)
    shades = np.full(cells.shape, 128, np.uint8)
    shades[cells == 0] = 235
    shades[cells == 100] = 0
    top_down = shades[::-1, ::-1].T  # rows: x from far to near; columns: y from left to right
    width = max(1, round(top_down.shape[1] * height / top_down.shape[0]))
    return cv2.cvtColor(cv2.resize(top_down, (width, height), interpolation=cv2.INTER_NEAREST), cv2.COLOR_GRAY2RGB)


def confidence_image(confidence: np.ndarray) -> np.ndarray:
    """A mono8 confidence map as RGB, dark (unsure) to bright yellow (sure)."""
    return cv2.cvtColor(cv2.applyColorMap(confidence, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)


def ground_sheet(rows: list[tuple[np.ndarray, np.ndarray, OccupancyGrid]]) -> np.ndarray:
    """One row per frame: overlay, confidence and the bird's-eye grid, side by side."""
    h, w = rows[0][0].shape[:2]
    tw, th = THUMB_WIDTH, max(1, round(h * THUMB_WIDTH / w))

    def thumb(image: np.ndarray) -> np.ndarray:
        return cv2.resize(image, (tw, th), interpolation=cv2.INTER_AREA)

    tiles = [[thumb(overlay), thumb(confidence_image(conf)), grid_image(grid, th)] for overlay, conf, grid in rows]
    width = max(sum(t.shape[1] for t in row) for row in tiles)
    sheet = np.zeros((th * len(rows), width, 3), np.uint8)
    for r, row in enumerate(tiles):
        line = np.hstack(row)
        sheet[r * th:(r + 1) * th, :line.shape[1]] = line
    return sheet


def ground_rows(collector: OutputCollector) -> list[tuple[np.ndarray, np.ndarray, OccupancyGrid]]:
    """Up to :data:`SHEET_ROWS` frames, evenly spread, that have their overlay, confidence and grid."""
    complete = [(overlay, collector.confidence[stamp], collector.grids[stamp])
                for stamp, overlay in sorted(collector.overlays, key=lambda item: item[0])
                if stamp in collector.confidence and stamp in collector.grids]
    if len(complete) <= SHEET_ROWS:
        return complete
    return [complete[round(i)] for i in np.linspace(0, len(complete) - 1, SHEET_ROWS)]


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
    prepare_for_large_frames()
    domain = pick_domain_id("tools") if args.domain_id is None else args.domain_id
    env = ros_env(domain)
    # The grid needs the camera's pose over the street: the simulator's synthetic camera is known.
    pose = sequence_cameras(DEMO_SEED, 1, args.height, args.width)[0].pose_over_ground()
    pose_args = [w for name in ("height", "pitch", "roll", "yaw")
                 for w in ("-p", f"camera_{name}:={getattr(pose, name):.6f}")]
    node = ChildProcess(node_command(NodeSpec(weights, input_scale=args.input_scale), *pose_args), env)
    camera = ChildProcess(python_module("bialign_ros.cli.camera_sim", "--rate", str(args.rate),
                                        "--width", str(args.width), "--height", str(args.height),
                                        "--frames", str(min(args.frames, 30)), "--seed", str(DEMO_SEED)), env)
    rclpy.init(domain_id=domain)
    collector = OutputCollector(keep_overlays=args.frames, ground=True)
    executor = SingleThreadedExecutor()
    executor.add_node(collector)
    started = time.monotonic()
    ok = False
    try:
        def done() -> bool:
            return len(collector.overlays) == args.frames and bool(ground_rows(collector))

        while not done() and time.monotonic() - started < args.timeout:
            executor.spin_once(timeout_sec=0.1)
            if node.proc.poll() is not None or camera.proc.poll() is not None:
                break
        report = dict(collector.report)
        ok = done()
    finally:
        executor.shutdown()
        collector.destroy_node()
        rclpy.try_shutdown()
        codes = {"camera": camera.interrupt(), "node": node.interrupt()}
    (out / "node.log").write_text(node.output + "\n")
    (out / "camera_sim.log").write_text(camera.output + "\n")
    if not ok:
        print(f"collected {len(collector.overlays)} of {args.frames} overlays ({len(collector.grids)} grids); "
              f"exit codes {codes}; "
              f"see {out / 'node.log'}", file=sys.stderr)
        return 1
    for i, (_, image) in enumerate(sorted(collector.overlays, key=lambda item: item[0])):
        write_png(frames_dir / f"overlay_{i:03d}.png", image)
    sheet_path = out / "contact_sheet.png"
    write_png(sheet_path, ground_sheet(ground_rows(collector)))
    summary = OutputSummary.of(collector.arrivals)
    print(f"camera {args.width}x{args.height} at {args.rate:g} Hz -> node (input_scale {args.input_scale:g}): "
          f"input {report.get('input_rate_hz', float('nan')):.2f} Hz, output {summary.rate_hz:.2f} Hz "
          f"({report.get('frames_dropped', 0):.0f} frames dropped, latest frame wins)")
    print(f"end-to-end latency (camera stamp to arrival here): {summary.latency_text()}; "
          f"node latency mean {report.get('latency_mean_ms', float('nan')):.1f} ms, "
          f"p99 {report.get('latency_p99_ms', float('nan')):.1f} ms")
    print(f"wrote {len(collector.overlays)} overlays to {frames_dir} and {sheet_path} (overlay, confidence "
          f"and bird's-eye grid of {len(ground_rows(collector))} frames); "
          f"stopped camera and node (exit codes {codes['camera']}, {codes['node']})")
    return 0 if codes == {"camera": 0, "node": 0} else 1


if __name__ == "__main__":
    sys.exit(main())
