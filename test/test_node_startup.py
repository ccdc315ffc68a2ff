"""Start-up of the bialign node: parameter checks, weights errors, lifecycle, waiting for frames."""

from __future__ import annotations

import signal
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy")

from lifecycle_msgs.msg import Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState, GetState  # noqa: E402
from ros_harness import ChildProcess, RosPeer, best_effort, reliable, start_node  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from bialign_ros.codec import fill_image  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def test_bad_parameters_fail_at_start_naming_each_one_and_its_allowed_values(domain_id, untrained_weights):
    bad = {"device": "gpu", "precision": "fp8", "input_scale": "9.0", "qos_reliability": "sometimes",
           "qos_depth": "0", "overlay_alpha": "high"}
    args = [a for name, value in bad.items() for a in ("-p", f"{name}:={value}")]
    node = start_node(domain_id, "-p", f"weights:={untrained_weights}", *args)
    try:
        assert node.wait(60) == 1, node.output
    finally:
        node.stop()
    for text in ["parameter 'device': got 'gpu'; allowed: one of auto, cpu, cuda, cuda:N",
                 "parameter 'precision': got 'fp8'; allowed: one of auto, fp32, fp16, bf16",
                 "parameter 'input_scale': got 9.0; allowed: a number in [0.05, 4]",
                 "parameter 'qos_reliability': got 'sometimes'; allowed: one of auto, reliable, best_effort",
                 "parameter 'qos_depth': got 0; allowed: an integer in [1, 100]",
                 "parameter 'overlay_alpha': got 'high'; allowed: a number in [0, 1]"]:
        assert text in node.output, node.output
    assert "Traceback" not in node.output and "model" not in node.output  # failed before loading it


@pytest.mark.parametrize(("args", "expected"), [([], "parameter 'weights' is required"),
                                                (["-p", "weights:=/nonexistent/model.pt"], "weights file not found")],
                         ids=["unset", "missing-file"])
def test_missing_weights_fail_at_start_with_a_clear_message(domain_id, args, expected):
    node = start_node(domain_id, *args)
    try:
        assert node.wait(60) == 1, node.output
    finally:
        node.stop()
    assert expected in node.output and "Traceback" not in node.output


def test_unreadable_weights_fail_at_start(domain_id, tmp_path):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a checkpoint")
    node = start_node(domain_id, "-p", f"weights:={bad}")
    try:
        assert node.wait(60) == 1, node.output
    finally:
        node.stop()
    assert "parameter 'weights'" in node.output and str(bad) in node.output


def test_no_frame_warning_names_topic_and_required_qos(domain_id, untrained_weights):
    # rclpy's standard override parameter fixes the reliability (qos_reliability stays auto).
    node = start_node(domain_id, "-p", f"weights:={untrained_weights}", "-p", "no_frame_warning:=1.0",
                      "-p", "qos_overrides./front/image_raw.subscription.reliability:=reliable",
                      "-r", "image:=/front/image_raw")
    peer = RosPeer(domain_id)
    try:
        peer.publisher(Image, "/front/image_raw", best_effort())  # does not match a reliable reader
        assert node.wait_for_output("no image received", 60), node.output
        warning = next(line for line in node.lines if "no image received" in line)
        assert "/front/image_raw" in warning and "reliability=reliable" in warning
        assert "a publisher must be reliable" in warning and "best_effort" in warning
        assert node.proc.poll() is None  # it keeps waiting
        assert node.interrupt() == 0
    finally:
        peer.close()
        node.stop()


def change_state(peer: RosPeer, node: ChildProcess, transition: int, label: str) -> None:
    """Ask the node for a lifecycle transition and check the state it reaches.

    A lost response (see ``RosPeer.call``) is accepted when the state shows the transition
    happened; a transition is never requested twice."""
    resp = peer.call(ChangeState, "/bialign/change_state",
                     ChangeState.Request(transition=Transition(id=transition)), timeout=30, idempotent=False)
    assert resp is None or resp.success, node.output
    state = peer.call(GetState, "/bialign/get_state", GetState.Request(), timeout=30)
    assert state is not None and state.current_state.label == label, node.output


def test_managed_node_without_autostart_follows_lifecycle_transitions(domain_id, untrained_weights):
    node = start_node(domain_id, "-p", f"weights:={untrained_weights}", "-p", "autostart:=false")
    peer = RosPeer(domain_id)
    try:
        state = peer.call(GetState, "/bialign/get_state", GetState.Request(), timeout=60)
        assert state is not None and state.current_state.label == "unconfigured", node.output
        labels = peer.collect(Image, "/segmentation/labels")
        camera = peer.publisher(Image, "/image", reliable())
        change_state(peer, node, Transition.TRANSITION_CONFIGURE, "inactive")
        change_state(peer, node, Transition.TRANSITION_ACTIVATE, "active")
        assert node.wait_for_output("reliability=reliable", 30), node.output
        msg = fill_image(Image(), np.full((64, 96, 3), 90, np.uint8), "rgb8")
        msg.header.stamp.sec = 42
        camera.publish(msg)
        assert labels.wait_for(lambda m: m.header.stamp.sec == 42, 30) is not None, node.output
        change_state(peer, node, Transition.TRANSITION_DEACTIVATE, "inactive")
        change_state(peer, node, Transition.TRANSITION_CLEANUP, "unconfigured")
        assert node.interrupt() == 0
        assert "Traceback" not in node.output
    finally:
        peer.close()
        node.stop()


def _ctrl_c(node: ChildProcess) -> None:
    assert node.stop() == 0, node.output


def _shared_memory_segments(pid: int) -> set[Path]:
    """The Fast DDS shared-memory segments (not the port files, which the participants of a domain
    share) that process ``pid`` has mapped: ``fastdds_*`` (Fast DDS 3, Kilted) or ``fastrtps_*`` (2.x, Jazzy)."""
    maps = Path(f"/proc/{pid}/maps").read_text().splitlines()
    files = {Path(line.split()[-1]) for line in maps if "/dev/shm/fastdds_" in line or "/dev/shm/fastrtps_" in line}
    return {f for f in files if not f.name.startswith(("fastdds_port", "fastrtps_port"))}


@pytest.mark.skipif(not Path("/proc/self/maps").is_file(), reason="reads /proc/<pid>/maps (Linux)")
def test_a_node_stopped_with_ctrl_c_removes_its_shared_memory_a_killed_one_leaves_it(domain_id, untrained_weights):
    """Why tests and tools end ROS processes with ``ChildProcess.stop`` (Ctrl-C first), never a plain kill."""
    ends = {"ctrl-c": _ctrl_c, "sigterm": lambda node: node.interrupt(signal.SIGTERM), "kill": ChildProcess.kill}
    for how, end in ends.items():
        node = start_node(domain_id, "-p", f"weights:={untrained_weights}")
        segments: set[Path] = set()
        try:
            assert node.wait_for_output("subscribed to", 60), node.output
            segments = _shared_memory_segments(node.proc.pid)
            assert segments, node.output
            end(node)
            left = {s for s in segments if s.exists()}
            assert left == (segments if how == "kill" else set()), (how, left)
        finally:
            node.stop()
            for segment in segments:  # the killed node's, and its lock file
                segment.unlink(missing_ok=True)
                segment.with_name(f"{segment.name}_el").unlink(missing_ok=True)
