"""The ROS side of live evaluation: subscribe to the node's labels and to the ground truth.

Messages are converted in the callbacks (label images are small, mono8) and handed to a
:class:`~bialign_ros.bags.live_score.LiveScorer`; everything runs on the executor's one thread.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from bialign_ros.bags.live_score import LiveScorer
from bialign_ros.bags.messages import message_labels, stamp_to_ns

RELIABILITIES = {"reliable": ReliabilityPolicy.RELIABLE, "best_effort": ReliabilityPolicy.BEST_EFFORT}


class LiveEvaluator:
    """Subscriptions of ``node`` feeding ``scorer``; counts arrivals for the stop conditions."""

    def __init__(self, node: Node, scorer: LiveScorer, labels_topic: str, gt_topic: str,
                 reliability: str = "reliable", depth: int = 100) -> None:
        if reliability not in RELIABILITIES:
            raise ValueError(f"reliability must be one of {', '.join(RELIABILITIES)}, got {reliability!r}")
        self.node = node
        self.scorer = scorer
        self.lock = threading.Lock()
        self.last_arrival: float | None = None
        self.errors: list[str] = []
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=RELIABILITIES[reliability],
                         durability=DurabilityPolicy.VOLATILE)
        self.labels_topic = node.resolve_topic_name(labels_topic)
        self.gt_topic = node.resolve_topic_name(gt_topic)
        node.create_subscription(Image, self.labels_topic, self._on_labels, qos)
        node.create_subscription(Image, self.gt_topic, self._on_truth, qos)

    def _receive(self, msg: Any, add: Any, what: str) -> None:
        arrived = time.monotonic()
        with self.lock:
            self.last_arrival = arrived
            try:
                add(stamp_to_ns(msg.header.stamp), message_labels(msg), arrived)
            except ValueError as exc:
                if len(self.errors) < 10:
                    self.errors.append(f"{what}: {exc}")
                    self.node.get_logger().error(f"ignoring {what} message: {exc}")

    def _on_labels(self, msg: Image) -> None:
        self._receive(msg, self.scorer.add_labels, f"labels on {self.labels_topic}")

    def _on_truth(self, msg: Image) -> None:
        self._receive(msg, self.scorer.add_truth, f"ground truth on {self.gt_topic}")

    def resolved(self) -> int:
        """Ground-truth frames scored or counted as dropped so far."""
        with self.lock:
            return self.scorer.resolved

    def progress_line(self) -> str:
        """Counts and the running mIoU, for periodic logging."""
        with self.lock:
            s = self.scorer
            miou = s.held.miou()
            shown = "n/a" if math.isnan(miou) else f"{100 * miou:.1f}%"
            return (f"ground truth {s.truth_frames}, labels {s.label_frames}, "
                    f"matched {len(s.matched_stamps)}, dropped {len(s.dropped_stamps)}, mIoU {shown}")
