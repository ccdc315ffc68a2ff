"""The node runs ONNX exports: an fp32 file and an int8 file, each in a node of its own, publish the
labels the Segmenter gives on the same file (the int8 one, made as files were before the pyramid
pooling stayed in float, at input_scale 0.5, below the size it was calibrated at, which the node's log
says; the fp32 one with two frames in inference at once, whose labels still come out in stamp order)."""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("rclpy")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from ros_harness import RosPeer, best_effort, next_domain_id, reliable, start_node  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from bialign_ros.codec import fill_image  # noqa: E402
from bialign_ros.node_report import parse_key_values  # noqa: E402
from bialign_ros.segmenter import Segmenter  # noqa: E402
from bialign_ros.synthetic import render_scene  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

H, W = 96, 160  # not the export size: the files keep height and width symbolic


def test_node_runs_fp32_and_int8_onnx_files_like_the_segmenter(onnx_file, older_int8_file):
    files = {"fp32": onnx_file, "int8": older_int8_file}
    scales = {"fp32": 1.0, "int8": 0.5}
    streams = {"fp32": 2, "int8": 1}
    domains = {precision: next_domain_id() for precision in files}
    # Both nodes load their model at the same time.
    # Each file named with its precision, as bialign_benchmark starts the node.
    nodes = {precision: start_node(domains[precision], "-p", f"weights:={path}", "-p", "no_frame_warning:=0.0",
                                   "-p", f"precision:={precision}", "-p", f"input_scale:={scales[precision]}",
                                   "-p", f"inference_streams:={streams[precision]}")
             for precision, path in files.items()}
    peers = {}
    try:
        rgb = render_scene(321, H, W).image
        msg = fill_image(Image(), rgb, "rgb8")
        msg.header.stamp.sec = 77
        for precision, path in files.items():
            node, peer = nodes[precision], RosPeer(domains[precision])
            peers[precision] = peer
            camera = peer.publisher(Image, "/image", reliable())
            labels = peer.collect(Image, "/segmentation/labels", best_effort())
            diagnostics = peer.collect(DiagnosticArray, "/diagnostics")
            # auto QoS: subscribed best effort until the node sees the reliable camera, then reliable
            assert node.wait_for_output("reliability=reliable", 120), node.output
            assert peer.wait_for_subscribers(camera) and peer.wait_for_publishers("/segmentation/labels")
            camera.publish(msg)
            out = labels.wait_for(lambda m: m.header.stamp.sec == 77, 30)
            assert out is not None, node.output[-3000:]
            seg = Segmenter.from_checkpoint(path, device="cpu", input_scale=scales[precision])
            try:
                expected = seg.segment(rgb).labels
            finally:
                seg.close()
            np.testing.assert_array_equal(np.frombuffer(out.data, np.uint8).reshape(H, W), expected)
            report = diagnostics.wait_for(lambda m: m.status, 5)
            assert report is not None
            values = parse_key_values([(kv.key, kv.value) for kv in report.status[0].values])
            assert (values["backend"], values["precision"]) == ("onnxruntime", precision)
        # Two frames in inference at once: a burst of frames comes out in stamp order, the last one too
        camera = peers["fp32"].publisher(Image, "/image", reliable())
        burst = peers["fp32"].collect(Image, "/segmentation/labels", best_effort())
        assert peers["fp32"].wait_for_subscribers(camera) and peers["fp32"].wait_for_publishers("/segmentation/labels")
        for sec in range(100, 112):
            msg.header.stamp.sec = sec
            camera.publish(msg)
            time.sleep(0.01)
        assert burst.wait_for(lambda m: m.header.stamp.sec == 111, 30) is not None, nodes["fp32"].output[-3000:]
        stamps = [m.header.stamp.sec for m in burst.msgs]
        assert len(stamps) >= 2 and stamps == sorted(set(stamps)), stamps
        assert "2 frames in inference at once" in nodes["fp32"].output
        # The runner's warning about the int8 file's calibration size, on the node's ROS logger
        warned = [line for line in nodes["int8"].output.splitlines() if "was calibrated on" in line]
        assert len(warned) == 1 and warned[0].startswith("[WARN]") and "] [bialign]: " in warned[0], warned
        assert f"{older_int8_file.name} was calibrated on 96x64 frames and runs at {W // 2}x{H // 2}" in warned[0]
        assert not any("was calibrated on" in line for line in nodes["fp32"].output.splitlines())
    finally:
        for precision, node in nodes.items():
            if precision in peers:
                peers[precision].close()
            node.stop()
