"""Full-resolution frames cross processes with the shipped transport profile.

Under Fast DDS defaults a best-effort (sensor-data) reader in another process loses 6 MB
frames almost entirely (they fall back to fragmented UDP). With the profile, which the node
and this test process both use, every 2048x1024 rgb8 frame from a best-effort camera arrives,
and the full-size label images come back. The controlled pair runs the same camera and node
processes with and without the profile: the profile is what makes the difference.
"""

from __future__ import annotations

import re
import time

import numpy as np
import pytest

pytest.importorskip("rclpy")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from ros_harness import ChildProcess, RosPeer, best_effort, ros_env, start_node, wait_until  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from bialign_ros.cli.processes import python_module  # noqa: E402
from bialign_ros.codec import fill_image  # noqa: E402
from bialign_ros.node_report import parse_key_values  # noqa: E402
from bialign_ros.transport import LEGACY_PROFILE_ENV, PROFILE_ENV, profile_env_var  # noqa: E402

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

        def received() -> int:
            reports = _node_received(diagnostics)
            return reports[-1][1] if reports else 0

        assert wait_until(lambda: received() >= FRAMES, 20), f"node received {received()} of {FRAMES}"
        out = labels.wait_for(lambda m: 500 <= m.header.stamp.sec < 500 + FRAMES, 30)
        assert out is not None, node.output[-3000:]
        assert (out.height, out.width, out.encoding) == (H, W, "mono8") and len(out.data) == H * W
        assert node.interrupt() == 0
    finally:
        peer.close()
        node.stop()


def _node_received(diagnostics) -> list[tuple[float, int]]:
    """(node time in s, frames received so far) of every diagnostics report of the node."""
    points = []
    for msg in diagnostics.msgs:
        if msg.status:
            values = parse_key_values([(kv.key, kv.value) for kv in msg.status[0].values])
            points.append((msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9, values["frames_received"]))
    return points


@pytest.mark.parametrize(("profile", "height", "width", "arrives"), [
    (True, H, W, True), (False, H, W, False), (False, 64, 128, True)],
    ids=["profile", "fastdds_defaults", "fastdds_defaults_small_frames"])
def test_the_profile_is_what_delivers_full_resolution_frames(domain_id, untrained_weights, profile, height, width,
                                                            arrives):
    """A 10 Hz best-effort camera and the node, both in their own processes, with the shipped profile
    or with Fast DDS's defaults (an empty profiles variable, which Fast DDS ignores and
    ``use_transport_profile`` leaves alone): the rate at which frames reach the node over 4 s.
    2048x1024 frames: with the profile at least 90 % of the camera's frames arrive, without it at
    most half. Small frames without the profile all arrive: the processes do meet, size is what fails."""
    env = ros_env(domain_id)
    env.pop(LEGACY_PROFILE_ENV, None)
    env.pop(PROFILE_ENV, None)
    if not profile:
        env[profile_env_var(env)] = ""
    camera = ChildProcess(python_module("bialign_ros.cli.camera_sim", "--width", str(width), "--height", str(height),
                                        "--frames", "2", "--rate", str(RATE), "--reliability", "best_effort"), env)
    node = ChildProcess(python_module("bialign_ros.node", "--ros-args", "-p", f"weights:={untrained_weights}",
                                      "-p", "input_scale:=0.05", "-p", "qos_reliability:=best_effort"), env)
    peer = RosPeer(domain_id)
    try:
        diagnostics = peer.collect(DiagnosticArray, "/diagnostics")
        # From the first report with a frame received (discovery done; or 10 s after the node's first
        # report, should none arrive), the next four seconds.
        assert wait_until(lambda: _node_received(diagnostics), 60), node.output[-3000:]
        first = _node_received(diagnostics)[0][0]

        def window_start() -> tuple[float, int] | None:
            return next((p for p in _node_received(diagnostics) if p[1] > 0 or p[0] >= first + 10.0), None)

        assert wait_until(window_start, 20), node.output[-3000:]
        start = window_start()
        assert wait_until(lambda: _node_received(diagnostics)[-1][0] >= start[0] + 4.0, 15), node.output[-3000:]
        end = _node_received(diagnostics)[-1]
        rate = (end[1] - start[1]) / (end[0] - start[0])
        assert camera.interrupt() == 0, camera.output[-2000:]
        # what the camera sent, on average since it started: a host that slows down slows its timer too
        sent, seconds = map(float, re.search(r"published (\d+) frames in ([\d.]+) s", camera.output).groups())
        camera_rate = min(RATE, sent / seconds)
        print(f"profile={profile}, {width}x{height}: {rate:.1f} frames/s reached the node from a {RATE:g} Hz camera "
              f"that sent {camera_rate:.1f} a second")
        if arrives:
            assert rate >= 0.9 * camera_rate, (rate, camera_rate, camera.output[-2000:])
        else:
            assert rate <= 0.5 * RATE, rate
    finally:
        peer.close()
        node.stop()
        camera.stop()
