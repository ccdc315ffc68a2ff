"""The node runs from a real ``colcon build`` install tree, as ``ros2 run bialign_ros bialign_node`` would."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy")

from ros_harness import ROOT, ChildProcess, RosPeer, reliable, ros_env  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from bialign_ros.codec import fill_image  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def install_tree(tmp_path_factory) -> Path:
    colcon = BIN / "colcon"
    if not colcon.exists():
        pytest.skip("colcon is not installed in this environment (requirements/dev.txt)")
    work = tmp_path_factory.mktemp("colcon_node")
    shutil.copytree(ROOT, work / "src" / "bialign_ros",
                    ignore=shutil.ignore_patterns(".venv*", ".git", "build", "install", "log", "*.egg-info",
                                                  "__pycache__", ".*_cache", "demo_out", "bench_out", "runs"))
    proc = subprocess.run([str(colcon), "--log-base", str(work / "log"), "build", "--base-paths", str(work / "src"),
                           "--build-base", str(work / "build"), "--install-base", str(work / "install")],
                          cwd=work, env=ros_env(0) | {"PATH": f"{BIN}:/usr/bin:/bin"}, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return work / "install"


def test_installed_node_segments_a_frame_and_uses_the_installed_profile(install_tree, domain_id, untrained_weights):
    executable = install_tree / "bialign_ros" / "lib" / "bialign_ros" / "bialign_node"
    assert executable.is_file()
    env = ros_env(domain_id)
    for name in ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE"):
        env.pop(name, None)  # the installed node must find its own profile
    shell = (f"source {install_tree / 'setup.bash'} && cd / && "
             f"exec {executable} --ros-args -p weights:={untrained_weights}")
    node = ChildProcess(["bash", "-c", shell], env)
    peer = RosPeer(domain_id)
    try:
        labels = peer.collect(Image, "/segmentation/labels")
        camera = peer.publisher(Image, "/image", reliable())
        assert node.wait_for_output("reliability=reliable", 60), node.output
        profile = install_tree / "bialign_ros" / "share" / "bialign_ros" / "config" / "fastdds_large_frames.xml"
        assert f"transport profile for large frames: {profile}" in node.output
        msg = fill_image(Image(), np.full((64, 96, 3), 120, np.uint8), "rgb8")
        msg.header.stamp.sec = 7
        camera.publish(msg)
        out = labels.wait_for(lambda m: m.header.stamp.sec == 7, 30)
        assert out is not None and (out.height, out.width) == (64, 96), node.output
        assert node.interrupt() == 0 and "Traceback" not in node.output
    finally:
        peer.close()
        node.stop()
