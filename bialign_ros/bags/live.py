"""The ROS side of live evaluation: the node's class table, and subscriptions to its labels and the ground truth.

Messages are converted in the callbacks (label images are small, mono8) and handed to a
:class:`~bialign_ros.bags.live_score.LiveScorer`; everything runs on the executor's one thread.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

from rcl_interfaces.msg import ParameterType
from rcl_interfaces.srv import GetParameters
from rclpy.executors import Executor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.subscription import Subscription
from sensor_msgs.msg import Image

from bialign_ros.bags.live_score import LiveScorer
from bialign_ros.bags.messages import message_labels
from bialign_ros.codec.cdr_reader import deserialize_image
from bialign_ros.node_interface import CLASS_TABLE_PARAMS

RELIABILITIES = {"reliable": ReliabilityPolicy.RELIABLE, "best_effort": ReliabilityPolicy.BEST_EFFORT}
RESEND_S = 2.0
"""Seconds before the class-table request is sent again: Fast DDS can lose a service's response when it
answers before its response writer has matched the client's reader (ros2/rmw_fastrtps#842)."""


def publisher_class_names(node: Node, executor: Executor, labels_topic: str,
                          timeout: float) -> tuple[str, tuple[str, ...]]:
    """(name, class names) of the node that publishes ``labels_topic``, from its read-only ``class_names``
    parameter (see :mod:`bialign_ros.node_interface`), waiting up to ``timeout`` s for it to appear.

    Raises ValueError naming what is missing: no publisher, no parameter service, no class table.
    """
    topic = node.resolve_topic_name(labels_topic)
    deadline = time.monotonic() + timeout
    while not (publishers := node.get_publishers_info_by_topic(topic)):
        if time.monotonic() >= deadline:
            raise ValueError(f"no node publishes {topic} (waited {timeout:g} s): start the node first, or give "
                             "--weights for the class table")
        executor.spin_once(timeout_sec=0.1)
    info = publishers[0]
    name = f"{info.node_namespace.rstrip('/')}/{info.node_name}"
    client = node.create_client(GetParameters, f"{name}/get_parameters")
    try:
        if not client.wait_for_service(timeout_sec=max(0.0, deadline - time.monotonic())):
            raise ValueError(f"{name}, which publishes {topic}, answers no parameter requests")
        while True:  # the request only reads: sent again until a response comes or the time is up
            future = client.call_async(GetParameters.Request(names=[CLASS_TABLE_PARAMS[0]]))
            left = deadline - time.monotonic()
            executor.spin_until_future_complete(future, timeout_sec=max(0.1, min(left, RESEND_S)))
            if future.done() or left <= RESEND_S:
                break
            client.remove_pending_request(future)
        values = future.result().values if future.done() else []
    finally:
        node.destroy_client(client)
    if not values or values[0].type != ParameterType.PARAMETER_STRING_ARRAY:
        raise ValueError(f"{name}, which publishes {topic}, has no {CLASS_TABLE_PARAMS[0]} parameter: give "
                         "--weights for the class table")
    return name, tuple(values[0].string_array_value)


def _wait_for_publisher(subscription: Subscription, executor: Executor, timeout: float) -> bool:
    """True once ``subscription`` has matched a publisher, spinning ``executor`` for up to ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while subscription.get_publisher_count() < 1:
        if time.monotonic() >= deadline:
            return False
        executor.spin_once(timeout_sec=0.05)
    return True


class LiveEvaluator:
    """Subscriptions of ``node`` feeding ``scorer``; counts arrivals for the stop conditions.

    With an ``executor``, the ground truth is subscribed only once the labels subscription has
    matched a publisher (spinning for up to ``match_timeout`` s, else ValueError): a reliable
    publisher drops what it sent before a reader matched, and a player that waits for the ground
    truth's subscriber then starts only when the labels of its frames can arrive.
    """

    def __init__(self, node: Node, scorer: LiveScorer, labels_topic: str, gt_topic: str,
                 reliability: str = "reliable", depth: int = 100, executor: Executor | None = None,
                 match_timeout: float = 0.0) -> None:
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
        # raw: the labels are read from the CDR bytes in place, not copied into Python messages first
        labels = node.create_subscription(Image, self.labels_topic, self._on_labels, qos, raw=True)
        if executor is not None and not _wait_for_publisher(labels, executor, match_timeout):
            raise ValueError(f"the subscription to {self.labels_topic} matched none of its publishers within "
                             f"{match_timeout:g} s")
        node.create_subscription(Image, self.gt_topic, self._on_truth, qos, raw=True)

    def _receive(self, cdr: bytes, add: Any, what: str) -> None:
        arrived = time.monotonic()
        with self.lock:
            self.last_arrival = arrived
            try:
                msg = deserialize_image(cdr)
                add(msg.header.stamp.nanoseconds, message_labels(msg), arrived)
            except ValueError as exc:
                if len(self.errors) < 10:
                    self.errors.append(f"{what}: {exc}")
                    self.node.get_logger().error(f"ignoring {what} message: {exc}")

    def _on_labels(self, cdr: bytes) -> None:
        self._receive(cdr, self.scorer.add_labels, f"labels on {self.labels_topic}")

    def _on_truth(self, cdr: bytes) -> None:
        self._receive(cdr, self.scorer.add_truth, f"ground truth on {self.gt_topic}")

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
