"""Node benchmark: camera frames at a fixed rate through the bialign node over ROS, end to end.

1. Times the bare :class:`Segmenter` at the benchmark's resolution in this process, before
   and after the node runs: one image per call, and with ``--cameras N`` also a batch of N
   images per call (``segment_batch``, one forward pass).
2. Starts the node as its own process (shipped transport profile, default QoS), publishes
   frames at ``--rate`` from this process and receives ``segmentation/labels``. With
   ``--cameras N`` (N > 1) it runs twice: one camera first, then one node serving N cameras
   (namespaces cam0 .. camN-1, frames of all cameras published at the same instants, as
   hardware-synchronised cameras deliver them).
3. Reports frames delivered to the node, the node's output rate, end-to-end latency
   percentiles (publication stamp to arrival here) and the ratio of the node's output rate to
   the bare Segmenter rate (both from median frame intervals): the ROS plumbing should cost
   almost nothing (ratio near 1). With N cameras: each camera's delivered rate, their sum (the
   combined rate) and its ratio to the one-camera rate, which is what batching buys.
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
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import Image

from bialign_ros.cli.output_collector import OutputCollector, OutputSummary
from bialign_ros.cli.processes import ChildProcess, python_module, ros_env, wait_until
from bialign_ros.codec import fill_image
from bialign_ros.node_interface import INPUT_TOPIC, NODE_NAME, camera_topic, diagnostic_name
from bialign_ros.node_report import parse_key_values
from bialign_ros.qos import RELIABILITY_POLICIES, output_qos
from bialign_ros.segmenter import Segmenter
from bialign_ros.synthetic import render_scene
from bialign_ros.transport import use_transport_profile
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
    p.add_argument("--reliability", default="reliable", choices=tuple(RELIABILITY_POLICIES),
                   help="reliability of the camera publisher (the node's QoS stays at its default)")
    p.add_argument("--bare-frames", type=int, default=10, help="calls timed for each bare Segmenter rate")
    p.add_argument("--domain-id", type=int, default=100 + os.getpid() % 100)
    p.add_argument("--json", type=Path, help="also write the results to this file")
    return p


def bare_call_times(args: argparse.Namespace, weights: str,
                    batches: list[list[np.ndarray]]) -> list[list[float]]:
    """Seconds per Segmenter.segment_batch call (labels only) on each of ``batches``, in this process.

    Timed on a worker thread, as the node runs inference: with other load on a 2-core machine,
    PyTorch's CPU kernels called from the main thread were measured several times slower than
    from a worker thread, which would flatter the node.
    """
    seg = Segmenter.from_checkpoint(weights, device=args.device, precision=args.precision,
                                    input_scale=args.input_scale)
    times: list[list[float]] = [[] for _ in batches]

    def run() -> None:
        for images, record in zip(batches, times):
            seg.segment_batch(images, edges=False)
            for _ in range(args.bare_frames):
                start = time.perf_counter()
                seg.segment_batch(images, edges=False)
                record.append(time.perf_counter() - start)

    worker = threading.Thread(target=run, name="bare-segmenter")
    try:
        worker.start()
        worker.join()
    finally:
        seg.close()
    if any(len(record) != args.bare_frames for record in times):
        raise SystemExit("the bare Segmenter run failed (see the error above)")
    return times


class CameraRig(Node):
    """Publishes every camera's frame at the same instants and keeps the node's latest statuses."""

    def __init__(self, args: argparse.Namespace, cameras: list[str], images: list[np.ndarray]) -> None:
        super().__init__("bialign_bench_cameras")
        qos = output_qos(5)  # the sensor-data depth, as camera drivers use
        qos.reliability = RELIABILITY_POLICIES[args.reliability]
        self.pubs = [self.create_publisher(Image, camera_topic(cam, INPUT_TOPIC), qos) for cam in cameras]
        self.msgs = [fill_image(Image(), image, "rgb8") for image in images]
        for cam, msg in zip(cameras, self.msgs):
            msg.header.frame_id = cam or "camera"
        self.statuses: dict[str, dict[str, float | str]] = {}
        self.reports = 0
        self.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)

    def publish_all(self) -> None:
        """One frame on every camera, all with the same stamp."""
        stamp = self.get_clock().now().to_msg()
        for pub, msg in zip(self.pubs, self.msgs):
            msg.header.stamp = stamp
            pub.publish(msg)

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        statuses = {s.name: parse_key_values([(kv.key, kv.value) for kv in s.values]) for s in msg.status}
        if diagnostic_name(NODE_NAME) in statuses:
            self.statuses = statuses
            self.reports += 1


def _counts(status: dict[str, float | str]) -> dict[str, int]:
    return {"node_received": int(status["frames_received"]), "node_dropped": int(status["frames_dropped"]),
            "node_processed": int(status["frames_processed"])}


def run_node(args: argparse.Namespace, weights: str, images: list[np.ndarray], cameras: list[str]) -> dict:
    """Publish ``images`` (one per camera; ``cameras`` [''] for the single-camera node) at the camera rate
    through the node; return counts, rates and latency."""
    multi = ["-p", f"cameras:=[{', '.join(cameras)}]"] if cameras != [""] else []
    node = ChildProcess(python_module(
        "bialign_ros.node", "--ros-args", "-p", f"weights:={weights}", "-p", f"device:={args.device}",
        "-p", f"precision:={args.precision}", "-p", f"input_scale:={args.input_scale}",
        "-p", "stats_log_period:=0.0", *multi), ros_env(args.domain_id))
    rclpy.init(domain_id=args.domain_id)
    rig = CameraRig(args, cameras, images)
    collectors = {cam: OutputCollector(namespace=f"/{cam}", name=f"bialign_output_collector_{cam or 'node'}")
                  for cam in cameras}
    executor = SingleThreadedExecutor()
    for n in (rig, *collectors.values()):
        executor.add_node(n)
    try:
        matched = f"reliability={args.reliability}"
        subscribed = lambda: sum("subscribed to" in line and matched in line  # noqa: E731
                                 for line in node.lines) >= len(cameras)
        ready = wait_until(lambda: subscribed() or node.proc.poll() is not None, 120)
        if not ready or node.proc.poll() is not None:
            raise SystemExit(f"the node did not subscribe with {matched}:\n{node.output}")
        while (not all(c.count_publishers("segmentation/labels") for c in collectors.values())
               and node.proc.poll() is None):
            executor.spin_once(timeout_sec=0.05)
        settle = time.monotonic() + 1.0  # the new subscriptions still have to match these publishers
        while time.monotonic() < settle:
            executor.spin_once(timeout_sec=0.05)
        total = round(args.rate * args.duration)
        start = time.monotonic()
        for i in range(total):
            rig.publish_all()
            while (wait := start + (i + 1) / args.rate - time.monotonic()) > 0:
                executor.spin_once(timeout_sec=wait)
        quiet_since = time.monotonic()
        seen = sum(len(c.arrivals) for c in collectors.values())
        while time.monotonic() - quiet_since < 2.0:  # until outputs stop, then a fresh report
            executor.spin_once(timeout_sec=0.05)
            now_seen = sum(len(c.arrivals) for c in collectors.values())
            if now_seen != seen:
                seen, quiet_since = now_seen, time.monotonic()
        reports = rig.reports
        while rig.reports < reports + 2 and node.proc.poll() is None:
            executor.spin_once(timeout_sec=0.1)
        if not rig.statuses:
            raise SystemExit(f"no /diagnostics from the node:\n{node.output}")
        return _results(rig.statuses, collectors, total)
    finally:
        executor.shutdown()
        for n in (rig, *collectors.values()):
            n.destroy_node()
        rclpy.try_shutdown()
        if node.interrupt() != 0:
            print(node.output, file=sys.stderr)


def _results(statuses: dict[str, dict], collectors: dict[str, OutputCollector], published: int) -> dict:
    node_status = statuses[diagnostic_name(NODE_NAME)]
    if list(collectors) == [""]:
        summary = OutputSummary.of(collectors[""].arrivals)
        return {"published": published, **_counts(node_status), "outputs": summary.outputs,
                "output_rate_hz": summary.rate_hz, "output_median_rate_hz": summary.median_rate_hz,
                "latency_ms": summary.latency_ms, "latency_text": summary.latency_text()}
    per_camera = {}
    for cam, collector in collectors.items():
        summary = OutputSummary.of(collector.arrivals)
        per_camera[cam] = {"published": published, **_counts(statuses[diagnostic_name(NODE_NAME, cam)]),
                           "outputs": summary.outputs, "output_rate_hz": summary.rate_hz,
                           "output_median_rate_hz": summary.median_rate_hz, "latency_ms": summary.latency_ms}
    arrivals = sorted((a for c in collectors.values() for a in c.arrivals), key=lambda a: a.at)
    everything = OutputSummary.of(arrivals)
    return {"published": published * len(collectors), **_counts(node_status), "outputs": everything.outputs,
            "combined_rate_hz": sum(c["output_median_rate_hz"] for c in per_camera.values()),
            "combined_overall_rate_hz": sum(c["output_rate_hz"] for c in per_camera.values()),
            "forward_passes": int(node_status["forward_passes"]),
            "batched_frames": int(node_status["batched_frames"]),
            "latency_ms": everything.latency_ms, "latency_text": everything.latency_text(),
            "per_camera": per_camera}


def _hz(times: list[float], frames: int = 1) -> tuple[float, float]:
    """(median, mean) frames per second of calls that took ``times`` seconds for ``frames`` frames each."""
    return frames / float(np.median(times)), frames * len(times) / sum(times)


def _print_one_camera(result: dict, bare: float) -> None:
    print(f"  frames published {result['published']}, received by the node {result['node_received']} "
          f"({result['node_received'] / result['published']:.1%}), processed {result['node_processed']}, "
          f"dropped (latest wins) {result['node_dropped']}, outputs received {result['outputs']}")
    print(f"  node output rate {result['output_median_rate_hz']:.2f} Hz (median interval; "
          f"{result['output_rate_hz']:.2f} Hz overall); bare Segmenter {bare:.2f} Hz (median; "
          f"{result['bare_segmenter_mean_hz']:.2f} Hz mean); ratio {result['ratio']:.2f}")
    print(f"  end-to-end latency: {result['latency_text']}")


def _compare(args: argparse.Namespace, one: dict, multi: dict, bare: float, batch_times: list[float]) -> dict:
    """The N-camera results next to the one-camera run and the bare Segmenter rates; printed."""
    batch, batch_mean = _hz(batch_times, args.cameras)
    report = {"cameras": args.cameras, "width": args.width, "height": args.height, "rate_hz": args.rate,
              "input_scale": args.input_scale, "one_camera": one, "multi_camera": multi,
              "bare_segmenter_hz": bare, "bare_batch_frames_hz": batch,
              "bare_batch_frames_mean_hz": batch_mean,
              "bare_batch_vs_single": batch / bare,
              "combined_vs_one_camera": multi["combined_rate_hz"] / one["output_median_rate_hz"],
              "combined_vs_one_camera_overall": multi["combined_overall_rate_hz"] / one["output_rate_hz"]}
    print(f"{args.cameras} cameras in one node (each at {args.rate:g} Hz):")
    print(f"  frames published {multi['published']}, received by the node {multi['node_received']}, "
          f"processed {multi['node_processed']}, dropped (latest wins) {multi['node_dropped']}; "
          f"{multi['forward_passes']} forward passes, {multi['batched_frames']} frames batched")
    rates = ", ".join(f"{cam} {c['output_median_rate_hz']:.2f} Hz" for cam, c in multi["per_camera"].items())
    print(f"  output rate per camera (median interval): {rates}; combined "
          f"{multi['combined_rate_hz']:.2f} Hz ({multi['combined_overall_rate_hz']:.2f} Hz overall)")
    print(f"  end-to-end latency: {multi['latency_text']}")
    print(f"  bare Segmenter: one image {bare:.2f} Hz, batch of {args.cameras} {batch:.2f} frames/s "
          f"(median; x{report['bare_batch_vs_single']:.2f})")
    print(f"combined rate / one-camera rate: {report['combined_vs_one_camera']:.2f} (median intervals; "
          f"{report['combined_vs_one_camera_overall']:.2f} overall)")
    return report


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = build_parser().parse_args(argv)
    if args.cameras < 1:
        raise SystemExit(f"--cameras must be at least 1, got {args.cameras}")
    use_transport_profile()
    cameras = [f"cam{i}" for i in range(args.cameras)]
    with tempfile.TemporaryDirectory() as tmp:
        weights = args.weights or str(untrained_checkpoint(Path(tmp) / "untrained_bialign_dfnet2.pt"))
        images = [render_scene(seed=i, height=args.height, width=args.width).image
                  for i in range(len(cameras))]
        calls = [[images[0]]] + ([images] if args.cameras > 1 else [])
        # The bare Segmenter is timed before and after the node runs, and both sides of each ratio
        # use the median frame interval: other load on the machine, which comes in bursts,
        # then affects them alike.
        before = bare_call_times(args, weights, calls)
        result = run_node(args, weights, images[:1], [""])
        multi = run_node(args, weights, images, cameras) if args.cameras > 1 else None
        after = bare_call_times(args, weights, calls)
    bare, bare_mean = _hz(before[0] + after[0])
    result.update(width=args.width, height=args.height, rate_hz=args.rate, input_scale=args.input_scale,
                  bare_segmenter_hz=bare, bare_segmenter_mean_hz=bare_mean,
                  ratio=result["output_median_rate_hz"] / bare)
    print(f"{args.width}x{args.height} rgb8 at {args.rate:g} Hz for {args.duration:g} s "
          f"(input_scale {args.input_scale:g}, camera {args.reliability})")
    if multi is None:
        _print_one_camera(result, bare)
        report = result
    else:
        print("one camera:")
        _print_one_camera(result, bare)
        report = _compare(args, result, multi, bare, before[1] + after[1])
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
