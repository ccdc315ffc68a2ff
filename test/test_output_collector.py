"""The benchmark's and the demo's output collector: which of its subscriptions have matched the node."""

from __future__ import annotations

import time

import pytest

pytest.importorskip("rclpy")

import rclpy  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from ros_harness import RosPeer, next_domain_id, reliable  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from bialign_ros.cli.output_collector import OutputCollector  # noqa: E402
from bialign_ros.node_interface import OUTPUT_TOPICS  # noqa: E402

pytestmark = pytest.mark.ros


def test_matched_once_every_output_subscription_has_a_publisher_diagnostics_aside():
    domain = next_domain_id()
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    collector = OutputCollector(context=context, subscribe=["labels", "color"])
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(collector)
    node = RosPeer(domain, "bialign")

    def matched_within(seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
            if collector.matched():
                return True
        return False

    try:
        node.publisher(Image, OUTPUT_TOPICS["labels"], reliable())
        assert not matched_within(1.5)  # the colour image has no publisher yet
        node.publisher(Image, OUTPUT_TOPICS["color"], reliable())
        assert matched_within(20)  # and nobody publishes /diagnostics
    finally:
        node.close()
        executor.shutdown()
        collector.destroy_node()
        rclpy.try_shutdown(context=context)
