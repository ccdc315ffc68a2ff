"""The node end to end: ``bialign_node`` in a child process, fed by a camera publisher over real DDS.

:func:`run_node` starts the node with a :class:`NodeSpec` (weights, device, precision, backend,
input scale, cameras) and the shipped transport profile on an isolated ROS domain, waits until
its ``/diagnostics`` status says it is active and subscribed with the camera's reliability,
publishes every camera's frame at the same instants at a fixed rate, and collects each label
image that comes back. The :class:`NodeRun` it returns holds the publications, the arrivals, the
node's last statuses and its memory peak; :meth:`NodeRun.delivery` turns them into delivered
rate, drops and latency.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from bialign_ros.bench.node_command import NodeSpec, node_command
from bialign_ros.cli.camera_sim import camera_info
from bialign_ros.cli.output_collector import Arrival, OutputCollector
from bialign_ros.cli.processes import ChildProcess, ros_env
from bialign_ros.codec.cdr import serialize_image
from bialign_ros.node_diagnostics import DIAGNOSTICS_PERIOD_S
from bialign_ros.node_interface import (
    CAMERA_INFO,
    DEPTH_TOPIC,
    DIAGNOSTICS_TOPIC,
    INPUT_TOPIC,
    NODE_NAME,
    camera_topic,
    diagnostic_name,
)
from bialign_ros.node_report import THREAD_GROUPS, parse_key_values, thread_cpu_key
from bialign_ros.qos import RELIABILITY_POLICIES, output_qos
from bialign_ros.rate_stats import CpuMeter
from bialign_ros.raw_publish import publish_serialized
from bialign_ros.timing import process_peak_rss_mb
from bialign_ros.transport import prepare_for_large_frames

T = TypeVar("T")

READY_TIMEOUT = 180.0
"""Seconds the node may take to load the model and subscribe (a TensorRT engine build takes long)."""
FIRST_LABELS_TIMEOUT = 600.0
"""Seconds the node may take for its first labels (a compiled graph compiles on its first frame)."""


def node_ready(statuses: dict[str, dict[str, Any]], cameras: Sequence[str], reliability: str) -> bool:
    """True once the node's ``/diagnostics`` say it is active and every camera's input is subscribed
    with ``reliability`` (the node matches its publishers' reliability once they are seen)."""
    node = statuses.get(diagnostic_name(NODE_NAME))
    if node is None or node.get("state") != "active":
        return False
    scopes = [diagnostic_name(NODE_NAME, cam) for cam in cameras]
    return all(str(statuses.get(scope, {}).get("subscription_qos", "")).startswith(f"reliability={reliability}")
               for scope in scopes)


@dataclass
class NodeRun:
    """What one run of the node gave: publications, arrivals per camera, last statuses, memory."""

    published_ns: list[int]
    """Input stamps of every publication (all cameras share each stamp)."""
    arrivals: dict[str, list[Arrival]]
    """Per camera, the label images received."""
    statuses: dict[str, dict[str, Any]]
    """The node's last ``/diagnostics`` statuses by name."""
    seconds: float
    """The measured window: publications of the last ``seconds`` (after the warm-up)."""
    rate_hz: float
    memory_peak_mb: float | None = None
    outputs_received: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per camera, the messages received of each optional output subscribed."""
    windows_ns: list[tuple[int, int]] = field(default_factory=list)
    """The measured windows of input stamps (start excluded, end included), one per slice of the run;
    by default one: the publications of the last ``seconds``."""
    node_cpu: list[tuple[int, float]] = field(default_factory=list)
    """(stamp in ns, ``cpu_percent``) of each of the node's reports: its process CPU over the second before
    (:data:`~bialign_ros.node_diagnostics.DIAGNOSTICS_PERIOD_S`)."""
    node_threads: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    """(stamp in ns, CPU % by thread group) of each of the node's reports that has them (its
    ``cpu_<group>_percent``)."""
    harness_cpu: list[float] = field(default_factory=list)
    """This process's CPU (% of one core) during each slice: the camera and the output subscribers."""
    first_frames: int = 0
    """Frames published (per camera) before the run, until the node's first labels came back."""

    def __post_init__(self) -> None:
        if not self.windows_ns:
            end = self.published_ns[-1] if self.published_ns else 0
            self.windows_ns = [(end - round(self.seconds * 1e9), end)]

    def _measured(self, stamp_ns: int) -> bool:
        return any(start < stamp_ns <= end for start, end in self.windows_ns)

    def measured_arrivals(self, camera: str = "") -> list[Arrival]:
        """``camera``'s label images whose input stamps lie in the measured windows (not those of the
        warm-up frames, nor the first labels, which wait for a compiled graph to compile)."""
        return [a for a in self.arrivals[camera] if self._measured(a.stamp_ns)]

    def _working_reports(self, reports: list[tuple[int, T]]) -> list[T]:
        """The values of the node ``reports`` (stamp in ns, value) whose second lies between the first and the
        last publication of a measured window, when the node had frames to work on. A window reaches back
        one camera period before its first publication; at a slow camera rate that is seconds in which
        the node waited idle, and counting its reports then would make the node look idle."""
        period = round(DIAGNOSTICS_PERIOD_S * 1e9)
        spans = []
        for start, end in self.windows_ns:
            first = min((t for t in self.published_ns if start < t <= end), default=None)
            if first is not None:
                spans.append((first + period, end))
        return [value for stamp, value in reports if any(low <= stamp <= high for low, high in spans)]

    def node_cpu_percent(self) -> float | None:
        """The node process's mean CPU (% of one core) over its reports of the measured windows' working
        seconds (see :meth:`_working_reports`)."""
        inside = self._working_reports(self.node_cpu)
        return float(np.mean(inside)) if inside else None

    def node_thread_cpu_percent(self) -> dict[str, float]:
        """The node's mean CPU (% of one core) by thread group over its reports of the measured windows'
        working seconds; empty when its reports have none (not Linux)."""
        inside = self._working_reports(self.node_threads)
        return {group: float(np.mean([g.get(group, 0.0) for g in inside])) for group in (inside[0] if inside else {})}

    def harness_cpu_percent(self) -> float | None:
        """This process's mean CPU (% of one core) while it published: the camera and the subscribers."""
        return float(np.mean(self.harness_cpu)) if self.harness_cpu else None

    def status(self, camera: str = "") -> dict[str, Any]:
        """The node's last status (with ``camera``: that camera's)."""
        return self.statuses[diagnostic_name(NODE_NAME, camera)]

    def delivery(self, camera: str = "") -> dict[str, Any]:
        """Frames published and delivered in the windows, the delivered rate and the stamp-to-arrival
        latency, for ``camera``.

        The delivered rate is label images per second between the first and the last arrival of each
        window: the frames in flight when a window ends arrive after it, and counting them against the
        window's length would flatter a node by up to two frames per window.
        """
        sent = sum(self._measured(t) for t in self.published_ns)
        got = self.measured_arrivals(camera)
        gaps = span = 0.0
        for start, end in self.windows_ns:
            times = sorted(a.at for a in got if start < a.stamp_ns <= end)
            if len(times) > 1:
                gaps, span = gaps + len(times) - 1, span + times[-1] - times[0]
        latency = np.array([a.latency_s for a in got]) * 1000.0
        return {"publish_hz": self.rate_hz, "seconds": self.seconds, "published": sent, "delivered": len(got),
                "dropped": sent - len(got), "delivered_hz": gaps / span if span > 0 else len(got) / self.seconds,
                "latency_p50_ms": float(np.percentile(latency, 50)) if len(got) else None,
                "latency_p99_ms": float(np.percentile(latency, 99)) if len(got) else None}


def run_node(spec: NodeSpec, images: Sequence[np.ndarray], rate_hz: float, seconds: float, domain_id: int,
             warmup: float = 0.0, reliability: str = "reliable", outputs: Sequence[str] = (),
             slices: int = 1, between: Callable[[], None] | None = None) -> NodeRun:
    """Run the node on ``spec`` and publish ``images`` (one per camera) at ``rate_hz`` for ``warmup``
    plus ``seconds`` seconds on ROS domain ``domain_id``; collect what comes back.

    ``slices`` > 1 cuts the ``seconds`` into that many equal slices; between two slices the camera
    pauses, the frames in flight come back, and ``between`` runs (e.g. the bare Segmenter timed while
    the node idles, so that both are measured over the same minutes of a machine whose speed drifts).

    ``outputs`` subscribes to the named outputs besides the labels, so that the node
    computes them (it computes optional outputs only while someone subscribes); with the grid or the
    points among them every frame also comes with camera_info and a depth image of the same stamp.
    Raises RuntimeError when the node does not come up.
    """
    cameras = spec.camera_names()
    if len(images) != len(cameras):
        raise ValueError(f"{len(images)} images for {len(cameras)} cameras")
    prepare_for_large_frames()  # before this process's first DDS participant; the node inherits the profile
    node = ChildProcess(node_command(spec, "-p", "stats_log_period:=0.0"), ros_env(domain_id))
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain_id)
    rig = CameraRig(cameras, images, reliability, context, ground=bool({"grid", "points"} & set(outputs)))
    collectors = {cam: OutputCollector(namespace=f"/{cam}", name=f"bialign_output_collector_{cam or 'node'}",
                                       context=context, subscribe=outputs) for cam in cameras}
    executor = SingleThreadedExecutor(context=context)
    for n in (rig, *collectors.values()):
        executor.add_node(n)

    def spin_until(done: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not done():
            if node.proc.poll() is not None or time.monotonic() > deadline:
                return False
            executor.spin_once(timeout_sec=0.05)
        return True

    try:
        if not spin_until(lambda: node_ready(rig.statuses, cameras, reliability), READY_TIMEOUT):
            raise RuntimeError(f"the node did not report itself active and subscribed with "
                               f"reliability={reliability} on {DIAGNOSTICS_TOPIC} (exit {node.proc.poll()}):\n"
                               f"{node.output[-3000:]}")
        if not spin_until(lambda: all(c.matched() for c in collectors.values()), 30):
            raise RuntimeError(f"the node's outputs did not match this benchmark's subscriptions within 30 s "
                               f"(exit {node.proc.poll()}):\n{node.output[-3000:]}")
        if slices < 1:
            raise ValueError(f"slices must be at least 1, got {slices}")
        # A compiled graph compiles on its first frame: the run starts once labels come back.
        first, first_frames = time.monotonic(), 0
        while not all(c.arrivals for c in collectors.values()):
            if node.proc.poll() is not None or time.monotonic() - first > FIRST_LABELS_TIMEOUT:
                raise RuntimeError(f"no labels came back within {FIRST_LABELS_TIMEOUT:g} s of frames at "
                                   f"{rate_hz:g} Hz (exit {node.proc.poll()}):\n{node.output[-3000:]}")
            rig.publish_all()
            first_frames += 1
            spin_until(lambda: False, 1.0 / rate_hz)
        drain_outputs(executor, collectors.values(), rig)
        measured = max(slices, round(rate_hz * seconds))
        windows, harness_cpu = [], []
        for k in range(slices):
            if k:
                drain_outputs(executor, collectors.values(), rig)
                if between is not None:
                    between()
            in_slice = measured * (k + 1) // slices - measured * k // slices
            frames = in_slice + (round(rate_hz * warmup) if k == 0 else 0)
            start = time.monotonic()
            meter = CpuMeter()
            for i in range(frames):
                rig.publish_all()
                while (wait := start + (i + 1) / rate_hz - time.monotonic()) > 0:
                    executor.spin_once(timeout_sec=wait)
            end = rig.published_ns[-1]
            windows.append((end - round(in_slice / rate_hz * 1e9), end))
            harness_cpu.append(meter.percent())
        drain_outputs(executor, collectors.values(), rig)
        reports = rig.reports
        spin_until(lambda: rig.reports >= reports + 2, 10)  # counters that include the last frames
        memory = process_peak_rss_mb(node.proc.pid)
        if node.proc.poll() is not None:
            raise RuntimeError(f"the node stopped during the run (exit {node.proc.poll()}):\n{node.output[-3000:]}")
        return NodeRun(rig.published_ns, {cam: c.arrivals for cam, c in collectors.items()}, rig.statuses,
                       measured / rate_hz, rate_hz, memory,
                       {cam: dict(c.received) for cam, c in collectors.items()}, windows, rig.node_cpu,
                       rig.node_threads, harness_cpu, first_frames)
    finally:
        executor.shutdown()
        for n in (rig, *collectors.values()):
            n.destroy_node()
        rclpy.try_shutdown(context=context)
        if node.interrupt() != 0:
            print(node.output, file=sys.stderr)


def node_settled(status: dict[str, Any] | None, published: int, arrived: int) -> bool:
    """True when the node's ``status`` counts all ``published`` frames as received and each as settled
    (processed, dropped or failed), and the label images of all processed frames have ``arrived``.
    The counters only grow, so a status older than the last frame can only say False."""
    if not status:
        return False
    received = int(status.get("frames_received", 0))
    settled = sum(int(status.get(key, 0)) for key in ("frames_processed", "frames_dropped", "frames_failed",
                                                       "frames_rejected"))
    return received >= published and settled >= received and arrived >= int(status.get("frames_processed", 0))


def drain_outputs(executor: SingleThreadedExecutor, collectors: Iterable[OutputCollector], rig: CameraRig) -> None:
    """Spin until the frames still in flight have come back: until the node's ``/diagnostics`` (seen by
    ``rig``) say every frame the rig published is settled and its label image has arrived or, should
    they never say so (a lost message), until no label image has arrived for three of the worst
    latencies seen (at least 2 s).

    A frame may take longer than any fixed wait (bf16 at 2048x1024 takes about 15 s on a 2-core CPU);
    a drain that ends before it would run what comes next (the bare Segmenter between two slices)
    while the node still computes it, and count it against the next slice.
    """
    collectors = list(collectors)
    worst = max((a.latency_s for c in collectors for a in c.arrivals), default=0.0)
    quiet = max(2.0, 3.0 * worst)
    quiet_since = time.monotonic()
    seen = sum(len(c.arrivals) for c in collectors)
    while time.monotonic() - quiet_since < quiet:
        if node_settled(rig.statuses.get(diagnostic_name(NODE_NAME)), len(rig.published_ns) * rig.cameras, seen):
            return
        executor.spin_once(timeout_sec=0.05)
        now_seen = sum(len(c.arrivals) for c in collectors)
        if now_seen != seen:
            seen, quiet_since = now_seen, time.monotonic()


class CameraRig(Node):
    """Publishes every camera's frame at the same instants and keeps the node's latest statuses."""

    def __init__(self, cameras: list[str], images: Sequence[np.ndarray], reliability: str,
                 context: Context | None = None, ground: bool = False) -> None:
        super().__init__("bialign_bench_cameras", context=context)
        qos = output_qos(5)  # the sensor-data depth, as camera drivers use
        qos.reliability = RELIABILITY_POLICIES[reliability]
        self.pubs, self.msgs = [], []
        """Per publisher its message: a CameraInfo, or the (array, encoding, frame_id) of an image."""
        if ground:  # camera_info and a depth image (a wall 8 m ahead) before every frame, same stamp
            for cam, image in zip(cameras, images):
                h, w = image.shape[:2]
                self.pubs.append(self.create_publisher(CameraInfo, camera_topic(cam, CAMERA_INFO), qos))
                self.msgs.append(camera_info(h, w, cam or "camera"))
                self.pubs.append(self.create_publisher(Image, camera_topic(cam, DEPTH_TOPIC), qos))
                self.msgs.append((np.full((h, w), 8.0, np.float32), "32FC1", cam or "camera"))
        for cam, image in zip(cameras, images):
            self.pubs.append(self.create_publisher(Image, camera_topic(cam, INPUT_TOPIC), qos))
            self.msgs.append((np.ascontiguousarray(image), "rgb8", cam or "camera"))
        self.cameras = len(cameras)
        self.published_ns: list[int] = []
        self.statuses: dict[str, dict[str, Any]] = {}
        self.node_cpu: list[tuple[int, float]] = []
        """(stamp in ns, ``cpu_percent``) of each node report received."""
        self.node_threads: list[tuple[int, dict[str, float]]] = []
        """(stamp in ns, CPU % by thread group) of each node report received that has them."""
        self.reports = 0
        self.create_subscription(DiagnosticArray, DIAGNOSTICS_TOPIC, self._on_diagnostics, 10)

    def publish_all(self) -> None:
        """One frame on every camera, all with the same stamp."""
        now = self.get_clock().now()
        for pub, msg in zip(self.pubs, self.msgs):
            if isinstance(msg, tuple):  # images serialised from the array: the camera's cost stays small
                array, encoding, frame_id = msg
                publish_serialized(pub, serialize_image(Header(stamp=now.to_msg(), frame_id=frame_id), array, encoding))
            else:
                msg.header.stamp = now.to_msg()
                pub.publish(msg)
        self.published_ns.append(now.nanoseconds)

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        statuses = {s.name: parse_key_values([(kv.key, kv.value) for kv in s.values]) for s in msg.status}
        node = statuses.get(diagnostic_name(NODE_NAME))
        if node is not None:
            self.statuses = statuses
            self.reports += 1
            stamp = Time.from_msg(msg.header.stamp).nanoseconds
            cpu = node.get("cpu_percent", math.nan)
            if math.isfinite(cpu):
                self.node_cpu.append((stamp, cpu))
            threads = {group: node[thread_cpu_key(group)] for group in THREAD_GROUPS
                       if math.isfinite(node.get(thread_cpu_key(group), math.nan))}
            if threads:
                self.node_threads.append((stamp, threads))
