"""The node's ``compile`` parameter: torch.compile on the first frame of each size, refused elsewhere."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy")

from ros_harness import RosPeer, best_effort, reliable, start_node  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from bialign_ros.codec import fill_image  # noqa: E402
from bialign_ros.segmenter import Segmenter  # noqa: E402
from bialign_ros.synthetic import render_scene  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

H, W = 96, 160


def test_compile_with_an_onnx_file_fails_at_start_naming_the_parameter(domain_id, onnx_file):
    node = start_node(domain_id, "-p", f"weights:={onnx_file}", "-p", "compile:=true")
    try:
        assert node.wait(120) == 1, node.output
    finally:
        node.stop()
    assert "parameter 'compile'" in node.output and "onnxruntime" in node.output, node.output
    assert "Traceback" not in node.output


@pytest.mark.long
def test_a_compiled_node_publishes_the_labels_of_the_eager_segmenter(domain_id, trained_weights):
    node = start_node(domain_id, "-p", f"weights:={trained_weights}", "-p", "compile:=true",
                      "-p", "no_frame_warning:=0.0")
    peer = RosPeer(domain_id)
    try:
        camera = peer.publisher(Image, "/image", reliable())
        labels = peer.collect(Image, "/segmentation/labels", best_effort())
        assert node.wait_for_output("reliability=reliable", 120), node.output
        assert peer.wait_for_subscribers(camera) and peer.wait_for_publishers("/segmentation/labels")
        rgb = render_scene(5, H, W).image
        msg = fill_image(Image(), rgb, "rgb8")
        msg.header.stamp.sec = 9
        camera.publish(msg)
        out = labels.wait_for(lambda m: m.header.stamp.sec == 9, 600)
        assert out is not None, node.output[-3000:]
        assert f"compiling the graph for {W}x{H} images" in node.output and f"compiled for {W}x{H} in" in node.output
        seg = Segmenter.from_checkpoint(trained_weights, device="cpu", precision="fp32")
        try:
            expected = seg.segment(rgb).labels
        finally:
            seg.close()
        assert (np.frombuffer(out.data, np.uint8).reshape(H, W) == expected).mean() >= 0.999
    finally:
        peer.close()
        node.stop()
