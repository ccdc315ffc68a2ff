"""A ROS node that receives the bialign node's outputs for the demo and the benchmark."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import OccupancyGrid
from rclpy.context import Context
from rclpy.node import Node
from rclpy.time import Time
from sensor_msgs.msg import Image, PointCloud2

from bialign_ros.codec import image_to_array
from bialign_ros.codec.cdr_reader import deserialize_image, header_stamp_ns
from bialign_ros.node_interface import DIAGNOSTICS_TOPIC, NODE_NAME, OUTPUT_TOPICS, diagnostic_name
from bialign_ros.node_report import parse_key_values
from bialign_ros.qos import output_qos


@dataclass(frozen=True)
class Arrival:
    """One received label image: its stamp, end-to-end latency and arrival (monotonic) time."""

    stamp_ns: int
    latency_s: float
    at: float


class OutputCollector(Node):
    """Records every ``segmentation/labels`` arrival, keeps some overlays, follows /diagnostics.

    ``subscribe`` subscribes to the named outputs of
    :data:`~bialign_ros.node_interface.OUTPUT_TOPICS`, so that the node computes them (it computes
    optional outputs only while someone subscribes); ``ground`` keeps the confidence images and grids of the
    kept overlays' frames (``confidence`` and ``grids``, by stamp).
    """

    def __init__(self, namespace: str = "/", keep_overlays: int = 0, name: str = "bialign_output_collector",
                 ground: bool = False, context: Context | None = None,
                 subscribe: Sequence[str] = ()) -> None:
        super().__init__(name, namespace=namespace, context=context)
        self.arrivals: list[Arrival] = []
        self.overlays: list[tuple[int, np.ndarray]] = []
        self.confidence: dict[int, np.ndarray] = {}
        self.grids: dict[int, OccupancyGrid] = {}
        self.keep_overlays = keep_overlays
        self.report: dict[str, float | str] = {}
        self.reports = 0
        self.received: dict[str, int] = {}
        """Messages received per output subscribed with ``subscribe``."""
        qos = output_qos(10)
        # Images raw: read from their CDR only as far as needed, not turned into Python messages (the
        # node shares the CPU with this process)
        self.create_subscription(Image, OUTPUT_TOPICS["labels"], self._on_labels, qos, raw=True)
        if keep_overlays:
            self.create_subscription(Image, OUTPUT_TOPICS["overlay"], self._on_overlay, qos, raw=True)
        if ground:
            self.create_subscription(Image, OUTPUT_TOPICS["confidence"], self._on_confidence, qos, raw=True)
            self.create_subscription(OccupancyGrid, OUTPUT_TOPICS["grid"], self._on_grid, qos)
        for output in set(subscribe) - {"labels"}:
            msg_type = {"grid": OccupancyGrid, "points": PointCloud2}.get(output, Image)
            self.received[output] = 0
            self.create_subscription(msg_type, OUTPUT_TOPICS[output], self._counter(output), qos, raw=True)
        self.create_subscription(DiagnosticArray, DIAGNOSTICS_TOPIC, self._on_diagnostics, 10)

    def matched(self) -> bool:
        """True once every output subscription has matched a publisher: the node computes an optional
        output only for matched readers, and a reliable publisher drops what it sent before matching."""
        return all(sub.get_publisher_count() > 0 for sub in self.subscriptions
                   if sub.topic_name != DIAGNOSTICS_TOPIC)

    def _counter(self, output: str) -> Callable[[bytes], None]:
        def count(_msg: bytes) -> None:
            self.received[output] += 1
        return count

    def _on_labels(self, cdr: bytes) -> None:
        stamp = header_stamp_ns(cdr)
        latency = (self.get_clock().now().nanoseconds - stamp) * 1e-9
        self.arrivals.append(Arrival(stamp, latency, time.monotonic()))

    def _on_overlay(self, cdr: bytes) -> None:
        if len(self.overlays) < self.keep_overlays:
            msg = deserialize_image(cdr)
            self.overlays.append((msg.header.stamp.nanoseconds, image_to_array(msg).copy()))

    def _on_confidence(self, cdr: bytes) -> None:
        if len(self.confidence) < self.keep_overlays:
            msg = deserialize_image(cdr)
            self.confidence[msg.header.stamp.nanoseconds] = image_to_array(msg).copy()

    def _on_grid(self, msg: OccupancyGrid) -> None:
        if len(self.grids) < self.keep_overlays:
            self.grids[Time.from_msg(msg.header.stamp).nanoseconds] = msg

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name == diagnostic_name(NODE_NAME):  # the node's own status, not a camera's
                self.report = parse_key_values([(kv.key, kv.value) for kv in status.values])
                self.reports += 1


@dataclass(frozen=True)
class OutputSummary:
    """Delivered rate and end-to-end latency of the received label images."""

    outputs: int
    rate_hz: float
    """Outputs per second between the first and the last arrival."""
    median_rate_hz: float
    """1 / median gap between arrivals: robust to other load on the machine in bursts."""
    latency_ms: dict[str, float]

    @staticmethod
    def of(arrivals: list[Arrival]) -> OutputSummary:
        """Summarise ``arrivals`` (rates need at least two)."""
        lat = np.array([a.latency_s for a in arrivals]) * 1e3
        gaps = np.diff([a.at for a in arrivals])
        span = float(gaps.sum())
        rate = len(gaps) / span if span > 0 else 0.0
        median_rate = 1.0 / float(np.median(gaps)) if gaps.size and np.median(gaps) > 0 else 0.0
        pct = {f"p{q}": float(np.percentile(lat, q)) for q in (50, 90, 99)} if lat.size else {}
        return OutputSummary(len(arrivals), rate, median_rate,
                             {"mean": float(lat.mean()) if lat.size else float("nan"), **pct,
                              "max": float(lat.max()) if lat.size else float("nan")})

    def latency_text(self) -> str:
        """e.g. ``mean 120.0 ms, p50 110.0, p90 150.0, p99 180.0, max 190.0``."""
        return ", ".join(f"{k} {v:.1f}" for k, v in self.latency_ms.items()) + " ms"
