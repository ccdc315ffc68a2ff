"""The bialign node on compressed input in evaluation mode (every frame processed, in order), and
how image_transport and its older name input_transport choose the input."""

from __future__ import annotations

import signal
import time

import numpy as np
import pytest

pytest.importorskip("rclpy")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from ros_harness import RosPeer, next_domain_id, reliable, start_node, wait_until  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402

from bialign_ros.codec import compressed_to_rgb8, encode_compressed  # noqa: E402
from bialign_ros.node_report import parse_key_values  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

H, W = 96, 160
TOPIC = "/front/image_raw"


def compressed(seed: int, fmt: str, sec: int) -> CompressedImage:
    rng = np.random.default_rng(seed)
    rgb = np.repeat(np.repeat(rng.integers(0, 256, (H // 16, W // 16, 3), dtype=np.uint8), 16, 0), 16, 1)
    msg = encode_compressed(CompressedImage(), rgb, fmt=fmt, quality=90)
    msg.header.stamp.sec = sec
    msg.header.frame_id = "front"
    return msg


@pytest.fixture(scope="module")
def rig(untrained_weights):
    domain = next_domain_id()
    node = start_node(domain, "-p", f"weights:={untrained_weights}", "-p", "image_transport:=compressed",
                      "-p", "drop_frames:=false", "-p", "qos_depth:=50", "-r", f"image:={TOPIC}")
    peer = RosPeer(domain)
    try:
        pub = peer.publisher(CompressedImage, f"{TOPIC}/compressed", reliable(depth=50))
        outputs = {key: peer.collect(Image, f"/segmentation/{key}", reliable(depth=50))
                   for key in ("labels", "overlay")}
        diagnostics = peer.collect(DiagnosticArray, "/diagnostics")
        assert node.wait_for_output("reliability=reliable", 60), node.output
        assert peer.wait_for_publishers("/segmentation/labels")
        yield node, pub, outputs, diagnostics
    finally:
        peer.close()
        node.stop()


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_compressed_frames_give_labels_and_overlay_of_the_decoded_image(rig, segmenter, fmt):
    node, pub, outputs, _ = rig
    sec = 10 if fmt == "jpeg" else 11
    msg = compressed(sec, fmt, sec)
    pub.publish(msg)
    labels = outputs["labels"].wait_for(lambda m: m.header.stamp.sec == sec, 20)
    overlay = outputs["overlay"].wait_for(lambda m: m.header.stamp.sec == sec, 20)
    assert labels is not None and overlay is not None, node.output
    assert labels.header.frame_id == "front" and (labels.height, labels.width) == (H, W)
    image = compressed_to_rgb8(msg)
    expected = segmenter.segment(image, edges=False).labels
    np.testing.assert_array_equal(np.frombuffer(labels.data, np.uint8).reshape(H, W), expected)
    np.testing.assert_array_equal(np.frombuffer(overlay.data, np.uint8).reshape(H, W, 3),
                                  segmenter.overlay(image, expected, 0.5))


def test_evaluation_mode_processes_every_frame_of_a_burst_in_order(rig):
    node, pub, outputs, diagnostics = rig
    secs = list(range(100, 120))
    corrupt = compressed(0, "jpeg", 99)
    corrupt.data = bytes(corrupt.data)[: len(corrupt.data) // 2]
    pub.publish(corrupt)
    for sec in secs:
        pub.publish(compressed(sec, "jpeg", sec))
    assert wait_until(lambda: {m.header.stamp.sec for m in outputs["labels"].msgs} >= set(secs), 60), node.output
    got = [m.header.stamp.sec for m in outputs["labels"].msgs if m.header.stamp.sec >= 99]
    assert got == secs
    assert node.wait_for_output("corrupt jpeg data", 10), node.output
    start = len(diagnostics.items)
    assert wait_until(lambda: len(diagnostics.items) > start + 1, 5)
    report = parse_key_values([(kv.key, kv.value) for kv in diagnostics.items[-1].msg.status[0].values])
    assert report["frames_dropped"] == 0 and report["frames_rejected"] == 1
    assert report["frames_processed"] >= len(secs)


def test_the_older_input_transport_still_selects_compressed_input(domain_id, untrained_weights):
    node = start_node(domain_id, "-p", f"weights:={untrained_weights}", "-p", "input_transport:=compressed",
                      "-r", f"image:={TOPIC}")
    try:
        assert node.wait_for_output(f"input {TOPIC}/compressed (compressed)", 60), node.output
    finally:
        node.stop()


def test_image_transport_and_input_transport_disagreeing_stop_the_node_naming_both(domain_id, untrained_weights):
    node = start_node(domain_id, "-p", f"weights:={untrained_weights}", "-p", "image_transport:=compressed",
                      "-p", "input_transport:=raw")
    try:
        assert node.wait(60) == 1, node.output
    finally:
        node.stop()
    assert "parameters 'image_transport' ('compressed') and 'input_transport' ('raw') disagree" in node.output
    assert "Traceback" not in node.output


def test_sigterm_ends_the_node_cleanly(rig):
    node = rig[0]
    time.sleep(0.2)
    assert node.interrupt(signal.SIGTERM) == 0, node.output
    assert "Traceback" not in node.output
