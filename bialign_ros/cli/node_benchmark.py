"""Node benchmark: camera frames at a fixed rate through the bialign node over ROS, end to end.

1. Times the bare :class:`Segmenter` at the benchmark's resolution in this process, before
   and after the node run.
2. Starts the node as its own process (shipped transport profile, default QoS), publishes
   frames at ``--rate`` from this process and receives ``segmentation/labels``.
3. Reports frames delivered to the node, the node's output rate, end-to-end latency
   percentiles (publication stamp to arrival here) and the ratio of the node's output rate to
   the bare Segmenter rate (both from median frame intervals): the ROS plumbing should cost
   almost nothing (ratio near 1).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import Image

from bialign_ros.cli.output_collector import OutputCollector, OutputSummary
from bialign_ros.cli.processes import ChildProcess, python_module, ros_env, wait_until
from bialign_ros.codec import fill_image
from bialign_ros.qos import RELIABILITY_POLICIES, output_qos
from bialign_ros.segmenter import Segmenter
from bialign_ros.synthetic import render_scene
from bialign_ros.transport import use_transport_profile
from bialign_ros.weights import untrained_checkpoint


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of the node benchmark."""
    p = argparse.ArgumentParser(prog="bialign_node_benchmark", description=__doc__.splitlines()[0])
    p.add_argument("--weights", default="", help="bialign_ros checkpoint (empty: untrained weights)")
    p.add_argument("--width", type=int, default=2048)
    p.add_argument("--height", type=int, default=1024)
    p.add_argument("--rate", type=float, default=30.0, help="camera rate in Hz (default 30)")
    p.add_argument("--duration", type=float, default=20.0, help="seconds of publishing (default 20)")
    p.add_argument("--input-scale", type=float, default=0.25, help="node input_scale (default 0.25)")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto")
    p.add_argument("--reliability", default="reliable", choices=tuple(RELIABILITY_POLICIES),
                   help="reliability of the camera publisher (the node's QoS stays at its default)")
    p.add_argument("--bare-frames", type=int, default=10, help="frames timed for the bare Segmenter rate")
    p.add_argument("--domain-id", type=int, default=100 + os.getpid() % 100)
    p.add_argument("--json", type=Path, help="also write the results to this file")
    return p


def bare_frame_times(args: argparse.Namespace, weights: str, image: np.ndarray) -> list[float]:
    """Seconds per Segmenter.segment call (labels only) on ``image``, in this process.

    Timed on a worker thread, as the node runs inference: with other load on a 2-core machine,
    PyTorch's CPU kernels called from the main thread were measured several times slower than
    from a worker thread, which would flatter the node.
    """
    seg = Segmenter.from_checkpoint(weights, device=args.device, precision=args.precision,
                                    input_scale=args.input_scale)
    times: list[float] = []

    def run() -> None:
        seg.segment(image, edges=False)
        for _ in range(args.bare_frames):
            start = time.perf_counter()
            seg.segment(image, edges=False)
            times.append(time.perf_counter() - start)

    worker = threading.Thread(target=run, name="bare-segmenter")
    try:
        worker.start()
        worker.join()
    finally:
        seg.close()
    if len(times) != args.bare_frames:
        raise SystemExit("the bare Segmenter run failed (see the error above)")
    return times


def run_node(args: argparse.Namespace, weights: str, image: np.ndarray) -> dict:
    """Publish ``image`` at the camera rate through the node; return counts, rates and latency."""
    node = ChildProcess(python_module(
        "bialign_ros.node", "--ros-args", "-p", f"weights:={weights}", "-p", f"device:={args.device}",
        "-p", f"precision:={args.precision}", "-p", f"input_scale:={args.input_scale}",
        "-p", "stats_log_period:=0.0"), ros_env(args.domain_id))
    rclpy.init(domain_id=args.domain_id)
    collector = OutputCollector()
    executor = SingleThreadedExecutor()
    executor.add_node(collector)
    try:
        qos = output_qos(5)  # the sensor-data depth, as camera drivers use
        qos.reliability = RELIABILITY_POLICIES[args.reliability]
        pub = collector.create_publisher(Image, "image", qos)
        msg = fill_image(Image(), image, "rgb8")
        msg.header.frame_id = "camera"
        matched = f"reliability={args.reliability}"
        ready = wait_until(lambda: any("subscribed to" in line and matched in line for line in node.lines)
                           or node.proc.poll() is not None, 120)
        if not ready or node.proc.poll() is not None:
            raise SystemExit(f"the node did not subscribe with {matched}:\n{node.output}")
        while not collector.count_publishers("segmentation/labels") and node.proc.poll() is None:
            executor.spin_once(timeout_sec=0.05)
        settle = time.monotonic() + 1.0  # the new subscription still has to match this publisher
        while time.monotonic() < settle:
            executor.spin_once(timeout_sec=0.05)
        total = round(args.rate * args.duration)
        start = time.monotonic()
        for i in range(total):
            msg.header.stamp = collector.get_clock().now().to_msg()
            pub.publish(msg)
            while (wait := start + (i + 1) / args.rate - time.monotonic()) > 0:
                executor.spin_once(timeout_sec=wait)
        quiet_since = time.monotonic()
        seen = len(collector.arrivals)
        while time.monotonic() - quiet_since < 2.0:  # until outputs stop, then a fresh report
            executor.spin_once(timeout_sec=0.05)
            if len(collector.arrivals) != seen:
                seen, quiet_since = len(collector.arrivals), time.monotonic()
        reports = collector.reports
        while collector.reports < reports + 2 and node.proc.poll() is None:
            executor.spin_once(timeout_sec=0.1)
        if not collector.report:
            raise SystemExit(f"no /diagnostics from the node:\n{node.output}")
        summary = OutputSummary.of(collector.arrivals)
        return {"published": total, "node_received": int(collector.report["frames_received"]),
                "node_dropped": int(collector.report["frames_dropped"]),
                "node_processed": int(collector.report["frames_processed"]),
                "outputs": summary.outputs, "output_rate_hz": summary.rate_hz,
                "output_median_rate_hz": summary.median_rate_hz, "latency_ms": summary.latency_ms,
                "latency_text": summary.latency_text()}
    finally:
        executor.shutdown()
        collector.destroy_node()
        rclpy.try_shutdown()
        if node.interrupt() != 0:
            print(node.output, file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = build_parser().parse_args(argv)
    use_transport_profile()
    with tempfile.TemporaryDirectory() as tmp:
        weights = args.weights or str(untrained_checkpoint(Path(tmp) / "untrained_bialign_dfnet2.pt"))
        image = render_scene(seed=0, height=args.height, width=args.width).image
        # The bare Segmenter is timed before and after the node run, and both sides of the ratio
        # use the median frame interval: other load on the machine, which comes in bursts,
        # then affects them alike.
        before = bare_frame_times(args, weights, image)
        result = run_node(args, weights, image)
        after = bare_frame_times(args, weights, image)
    bare = 1.0 / float(np.median(before + after))
    result.update(width=args.width, height=args.height, rate_hz=args.rate, input_scale=args.input_scale,
                  bare_segmenter_hz=bare, bare_segmenter_mean_hz=len(before + after) / sum(before + after),
                  ratio=result["output_median_rate_hz"] / bare)
    print(f"{args.width}x{args.height} rgb8 at {args.rate:g} Hz for {args.duration:g} s "
          f"(input_scale {args.input_scale:g}, camera {args.reliability})")
    print(f"  frames published {result['published']}, received by the node {result['node_received']} "
          f"({result['node_received'] / result['published']:.1%}), processed {result['node_processed']}, "
          f"dropped (latest wins) {result['node_dropped']}, outputs received {result['outputs']}")
    print(f"  node output rate {result['output_median_rate_hz']:.2f} Hz (median interval; "
          f"{result['output_rate_hz']:.2f} Hz overall); bare Segmenter {bare:.2f} Hz (median; "
          f"{result['bare_segmenter_mean_hz']:.2f} Hz mean); ratio {result['ratio']:.2f}")
    print(f"  end-to-end latency: {result['latency_text']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
