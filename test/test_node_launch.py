"""launch/bialign.launch.py under launch_testing: the node starts, subscribes and exits cleanly.

launch, launch_ros and launch_testing come with ROS distros and are not on PyPI, so this test
is skipped in the pip environment; ``test_launch_config.py`` checks the launch file statically.
"""

from __future__ import annotations

import os
import unittest
from pathlib import Path

import pytest

pytest.importorskip("launch_ros", reason="launch_ros is not installed (ROS distro only, not on PyPI)")
pytest.importorskip("launch_testing", reason="launch_testing is not installed (ROS distro only, not on PyPI)")

from launch import LaunchDescription  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
from launch_testing import post_shutdown_test  # noqa: E402
from launch_testing.actions import ReadyToTest  # noqa: E402
from launch_testing.asserts import assertExitCodes  # noqa: E402

from bialign_ros.weights import untrained_checkpoint  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

LAUNCH_FILE = Path(__file__).resolve().parents[1] / "launch" / "bialign.launch.py"


@pytest.mark.launch_test
def generate_test_description():
    weights = untrained_checkpoint(Path(os.environ.get("TMPDIR", "/tmp")) / "bialign_launch_test.pt")
    include = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(LAUNCH_FILE)),
        launch_arguments={"camera": "/launch_test/image_raw", "namespace": "launch_test",
                          "weights": str(weights), "device": "cpu"}.items())
    return LaunchDescription([include, ReadyToTest()])


class TestNodeStarts(unittest.TestCase):
    def test_node_subscribes_to_the_camera(self, proc_output):
        proc_output.assertWaitFor("subscribed to /launch_test/image_raw", timeout=120)


@post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_exit_code(self, proc_info):
        assertExitCodes(proc_info)
