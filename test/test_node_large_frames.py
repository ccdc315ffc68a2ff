"""Full-resolution frames cross processes with the shipped transport profile.

Under Fast DDS defaults a best-effort (sensor-data) reader in another process loses 6 MB
frames almost entirely (they fall back to fragmented UDP). With the profile, which the node
and this test process both use, every 2048x1024 rgb8 frame from a best-effort camera arrives,
and the full-size label images come back.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("rclpy")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from ros_harness import RosPeer, best_effort, start_node, wait_until  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from bialign_ros.codec import fill_image  # noqa: E402
from bialign_ros.node_report import parse_key_values  # noqa: E402
from bialign_ros.transport import LEGACY_PROFILE_ENV, PROFILE_ENV  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

H, W = 1024, 2048
FRAMES, RATE = 20, 10.0


def test_every_full_resolution_frame_from_a_best_effort_camera_arrives(domain_id, untrained_weights):
    import os

    assert os.environ.get(PROFILE_ENV) or os.environ.get(LEGACY_PROFILE_ENV), "conftest sets the profile"
    node = start_node(domain_id, "-p", f"weights:={untrained_weights}", "-p", "input_scale:=0.05",
                      "-p", "no_frame_warning:=0.0")
    peer = RosPeer(domain_id)
    try:
        camera = peer.publisher(Image, "/image", best_effort(depth=5))
        labels = peer.collect(Image, "/segmentation/labels", best_effort(depth=5))
        diagnostics = peer.collect(DiagnosticArray, "/diagnostics")
        assert node.wait_for_output("reliability=best_effort", 60), node.output
        assert peer.wait_for_subscribers(camera) and peer.wait_for_publishers("/segmentation/labels")
        time.sleep(0.5)
        rng = np.random.default_rng(0)
        msg = fill_image(Image(), rng.integers(0, 256, (H, W, 3), dtype=np.uint8), "rgb8")
        start = time.monotonic()
        for i in range(FRAMES):
            msg.header.stamp.sec = 500 + i
            camera.publish(msg)
            time.sleep(max(0.0, start + (i + 1) / RATE - time.monotonic()))

        def received() -> float:
            reports = [m for m in diagnostics.msgs if m.status]
            if not reports:
                return 0
            return parse_key_values([(kv.key, kv.value) for kv in reports[-1].status[0].values])["frames_received"]

        assert wait_until(lambda: received() >= FRAMES, 20), f"node received {received()} of {FRAMES}"
        out = labels.wait_for(lambda m: 500 <= m.header.stamp.sec < 500 + FRAMES, 30)
        assert out is not None, node.output[-3000:]
        assert (out.height, out.width, out.encoding) == (H, W, "mono8") and len(out.data) == H * W
        assert node.interrupt() == 0
    finally:
        peer.close()
        node.kill()
