"""Serialised messages published through rcl without the GIL: what arrives, and what runs meanwhile."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

pytest.importorskip("rclpy")

import rclpy  # noqa: E402
from rclpy.lifecycle import LifecycleNode  # noqa: E402
from rclpy.signals import SignalHandlerOptions  # noqa: E402
from ros_harness import RosPeer, next_domain_id, reliable, wait_until  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from bialign_ros.codec import image_to_array  # noqa: E402
from bialign_ros.codec.cdr import serialize_image  # noqa: E402
from bialign_ros.raw_publish import _rcl, publish_serialized  # noqa: E402

pytestmark = pytest.mark.ros


@pytest.fixture
def peers():
    domain = next_domain_id()
    sender, receiver = RosPeer(domain, "sender"), RosPeer(domain, "receiver")
    yield sender, receiver
    sender.close()
    receiver.close()


def test_an_image_published_through_rcl_arrives_as_serialised(peers):
    assert _rcl() is not None, "librcl not loadable: publishing would hold the GIL"
    sender, receiver = peers
    received = receiver.collect(Image, "/raw_image", reliable())
    pub = sender.publisher(Image, "/raw_image", reliable())
    assert sender.wait_for_subscribers(pub) and receiver.wait_for_publishers("/raw_image")
    pixels = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    header = Header(frame_id="cam")
    header.stamp.sec, header.stamp.nanosec = 12, 345
    publish_serialized(pub, serialize_image(header, pixels, "rgb8"))
    msg = received.wait_for(lambda m: True, 20)
    assert msg is not None
    assert (msg.header.frame_id, msg.header.stamp.sec, msg.header.stamp.nanosec) == ("cam", 12, 345)
    np.testing.assert_array_equal(image_to_array(msg), pixels)


def test_a_lifecycle_publisher_sends_only_once_activated():
    domain = next_domain_id()
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain, signal_handler_options=SignalHandlerOptions.NO)
    node = LifecycleNode("managed", context=context)
    receiver = RosPeer(domain, "receiver")
    try:
        received = receiver.collect(Image, "/managed", reliable())
        node.trigger_configure()
        pub = node.create_lifecycle_publisher(Image, "/managed", reliable())
        assert wait_until(lambda: pub.get_subscription_count() > 0, 20)
        data = serialize_image(Header(frame_id="before"), np.zeros((2, 2), np.uint8), "mono8")
        publish_serialized(pub, data)
        node.trigger_activate()
        publish_serialized(pub, serialize_image(Header(frame_id="after"), np.zeros((2, 2), np.uint8), "mono8"))
        assert received.wait_for(lambda m: m.header.frame_id == "after", 20) is not None
        assert [m.header.frame_id for m in received.msgs] == ["after"]
    finally:
        receiver.close()
        node.destroy_node()
        rclpy.try_shutdown(context=context)


def test_other_threads_run_python_while_a_large_message_is_published(peers):
    sender, _ = peers
    pub = sender.publisher(Image, "/large", reliable())
    data = serialize_image(Header(frame_id="cam"), np.ones((2048, 4096), np.uint8), "mono8")  # 8 MB
    ticks: list[float] = []
    stop = threading.Event()

    def count() -> None:
        while not stop.is_set():
            ticks.append(time.perf_counter())

    counter = threading.Thread(target=count)
    counter.start()
    calls = []
    try:
        for _ in range(10):
            time.sleep(0.01)
            start = time.perf_counter()
            publish_serialized(pub, data)
            calls.append((start, time.perf_counter()))
    finally:
        stop.set()
        counter.join()
    stamps = np.array(ticks)

    def rate(spans: list[tuple[float, float]]) -> float:
        """The other thread's ticks per second within ``spans``."""
        return sum(int(((stamps > a) & (stamps < b)).sum()) for a, b in spans) / sum(b - a for a, b in spans)

    during, between = rate(calls), rate([(b, a) for (_, b), (a, _) in zip(calls, calls[1:])])
    print(f"ticks per ms: {during / 1e3:.0f} while publishing, {between / 1e3:.0f} between the calls")
    # holding the GIL, as rclpy's publish(bytes) does, the other thread ticks far less during a call
    # (a fifth as often here) than between the calls
    assert during > 0.5 * between
