"""One bialign node serving two cameras (parameter ``cameras``), driven over ROS from this process.

The node runs in namespace /robot with cameras front (its image remapped to front/image_raw)
and left; frames of both cameras published together run in one forward pass, each output
carries its own frame's header and goes to its own camera's topics.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("rclpy")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from ros_harness import RosPeer, best_effort, next_domain_id, reliable, start_node, wait_until  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402

from bialign_ros.codec import fill_image, image_to_rgb8  # noqa: E402
from bialign_ros.node_interface import OUTPUT_TOPICS, diagnostic_name  # noqa: E402
from bialign_ros.node_report import parse_key_values  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

NS = "/robot"
CAMERAS = ("front", "left")
INPUTS = {"front": f"{NS}/front/image_raw", "left": f"{NS}/left/image"}
SIZES = {"front": (96, 160), "left": (64, 128)}
OUTPUTS = ("labels", "edges", "color", "overlay")
NO_FRAME_WARNING = 2.0


def frame(camera: str, sec: int, size: tuple[int, int] | None = None) -> Image:
    """A blocky random rgb8 frame of ``camera`` with a recognisable stamp and the camera's frame_id."""
    h, w = size or SIZES[camera]
    rng = np.random.default_rng(sec * 7 + len(camera))
    rgb = np.repeat(np.repeat(rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8), 8, 0), 8, 1)
    msg = fill_image(Image(), rgb, "rgb8")
    msg.header.stamp.sec, msg.header.stamp.nanosec = sec, 456
    msg.header.frame_id = f"{camera}_optical"
    return msg


class Rig:
    """The node process, this process's peer node, a camera publisher and output readers per camera."""

    def __init__(self, weights: str) -> None:
        self.domain = next_domain_id()
        self.node = start_node(self.domain, "-p", f"weights:={weights}",
                               "-p", f"cameras:=[{', '.join(CAMERAS)}]", "-p", "batch_window:=0.5",
                               "-p", f"no_frame_warning:={NO_FRAME_WARNING}",
                               "-r", f"__ns:={NS}", "-r", "front/image:=front/image_raw")
        self.peer = RosPeer(self.domain)
        self.outputs = {(cam, key): self.peer.collect(Image, f"{NS}/{cam}/segmentation/{key}", best_effort())
                        for cam in CAMERAS for key in OUTPUTS}
        self.info_out = {cam: self.peer.collect(CameraInfo, f"{NS}/{cam}/segmentation/camera_info")
                         for cam in CAMERAS}
        self.diagnostics = self.peer.collect(DiagnosticArray, "/diagnostics")
        self.image_pubs = {cam: self.peer.publisher(Image, INPUTS[cam], reliable(10)) for cam in CAMERAS}
        self.info_pubs = {cam: self.peer.publisher(CameraInfo, f"{NS}/{cam}/camera_info") for cam in CAMERAS}
        self.sec = 2000

    def ready(self) -> None:
        """Wait until both camera subscriptions matched the reliable publishers and every output reader."""
        def subscribed() -> bool:
            lines = [line for line in self.node.lines if "subscribed to" in line]
            return sum("reliability=reliable" in line for line in lines) >= len(CAMERAS)

        assert wait_until(lambda: subscribed() or self.node.proc.poll() is not None, 60), self.node.output
        assert self.node.proc.poll() is None, self.node.output
        for cam in CAMERAS:
            assert self.peer.wait_for_subscribers(self.image_pubs[cam]), self.node.output
            for key in OUTPUTS:
                assert self.peer.wait_for_publishers(f"{NS}/{cam}/segmentation/{key}"), (cam, key)

    def next_sec(self) -> int:
        self.sec += 1
        return self.sec

    def wait_output(self, cam: str, key: str, sec: int, timeout: float = 20.0) -> Image | None:
        """The output ``key`` of ``cam`` whose stamp has ``sec``."""
        return self.outputs[cam, key].wait_for(lambda m: m.header.stamp.sec == sec, timeout)

    def reports(self, timeout: float = 5.0) -> dict[str, dict]:
        """The node's next /diagnostics statuses after now, by camera ('' for the node)."""
        start = len(self.diagnostics.items)
        assert wait_until(lambda: len(self.diagnostics.items) > start, timeout), "no /diagnostics"
        statuses = {s.name: s for s in self.diagnostics.items[-1].msg.status}
        out = {}
        for camera in ("", *CAMERAS):
            status = statuses[diagnostic_name("bialign", camera)]
            out[camera] = parse_key_values([(kv.key, kv.value) for kv in status.values]) | {
                "level": status.level[0], "message": status.message}
        return out

    def close(self) -> None:
        self.peer.close()
        try:
            self.node.interrupt()
        finally:
            self.node.stop()


@pytest.fixture(scope="module")
def rig(untrained_weights):
    r = Rig(str(untrained_weights))
    try:
        r.ready()
        yield r
    finally:
        r.close()


def _labels(msg: Image) -> np.ndarray:
    return np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.width)


def test_the_no_frame_warning_and_diagnostics_name_the_silent_cameras(rig):
    """Runs first: until now neither camera has sent anything."""
    assert rig.node.wait_for_output("no image received from camera(s) front, left: camera front: nothing on "
                                    f"{INPUTS['front']}", 15), rig.node.output
    sec = rig.next_sec()
    rig.image_pubs["front"].publish(frame("front", sec))
    assert rig.wait_output("front", "labels", sec) is not None, rig.node.output
    # Warnings repeat at 2, 4, 8, 16 s after activation; the next one names only the silent camera.
    only_left = f"no image received from camera(s) left: camera left: nothing on {INPUTS['left']}"
    assert rig.node.wait_for_output(only_left, 8 * NO_FRAME_WARNING + 2), rig.node.output
    warning = next(line for line in rig.node.lines if only_left in line)
    assert "reliability=reliable" in warning and "remap '<camera>/image'" in warning
    sec = rig.next_sec()
    rig.image_pubs["front"].publish(frame("front", sec))
    assert rig.wait_output("front", "labels", sec) is not None
    reports = rig.reports()
    assert reports[""]["message"] == f"no input from camera(s) left for more than {NO_FRAME_WARNING:g} s"
    assert reports["left"]["message"].startswith(f"no input on {INPUTS['left']}")
    assert reports["front"]["level"] == 0 and reports["front"]["camera"] == "front"
    assert reports[""]["cameras"] == "front, left"


def test_each_camera_gets_labels_equal_to_the_segmenter_on_its_own_topics_with_its_own_header(rig, segmenter):
    for cam in CAMERAS:
        info = CameraInfo(width=SIZES[cam][1], height=SIZES[cam][0], distortion_model="plumb_bob")
        info.k = [float(len(cam)), 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0]
        rig.info_pubs[cam].publish(info)
    time.sleep(0.5)  # let camera_info arrive before the frames
    sec = rig.next_sec()
    msgs = {cam: frame(cam, sec) for cam in CAMERAS}
    for cam in CAMERAS:
        rig.image_pubs[cam].publish(msgs[cam])
    for cam in CAMERAS:
        out = {key: rig.wait_output(cam, key, sec) for key in OUTPUTS}
        for key, m in out.items():
            assert m is not None, f"no {cam} {key}\n{rig.node.output[-3000:]}"
            header = m.header
            assert (header.stamp.sec, header.stamp.nanosec, header.frame_id) == (sec, 456, f"{cam}_optical")
            assert (m.height, m.width) == SIZES[cam]
        expected = segmenter.segment(image_to_rgb8(msgs[cam]))
        np.testing.assert_array_equal(_labels(out["labels"]), expected.labels)
        assert np.abs(_labels(out["edges"]).astype(int) - expected.edges_u8()).max() <= 1
        color = np.frombuffer(out["color"].data, np.uint8).reshape(*SIZES[cam], 3)
        np.testing.assert_array_equal(color, segmenter.colorize(expected.labels))
        info = rig.info_out[cam].wait_for(lambda m: m.header.stamp.sec == sec, 10)
        assert info is not None and info.header.frame_id == f"{cam}_optical" and info.k[0] == float(len(cam))
    for (cam, _), collector in rig.outputs.items():
        assert {m.header.frame_id for m in collector.msgs} == {f"{cam}_optical"}


def test_frames_of_both_cameras_published_together_run_in_one_forward_pass(rig, segmenter):
    size = SIZES["front"]
    before = rig.reports()
    sec = rig.next_sec()
    msgs = {cam: frame(cam, sec, size) for cam in CAMERAS}
    for cam in CAMERAS:
        rig.image_pubs[cam].publish(msgs[cam])
    out = {cam: rig.wait_output(cam, "labels", sec) for cam in CAMERAS}
    assert all(m is not None for m in out.values()), rig.node.output[-3000:]
    expected = segmenter.segment_batch([image_to_rgb8(msgs[cam]) for cam in CAMERAS], edges=False)
    for cam, result in zip(CAMERAS, expected):
        np.testing.assert_array_equal(_labels(out[cam]), result.labels)
    after = rig.reports()
    assert after[""]["forward_passes"] - before[""]["forward_passes"] == 1
    assert after[""]["batched_frames"] - before[""]["batched_frames"] == 2
    for cam in CAMERAS:
        assert after[cam]["forward_passes"] - before[cam]["forward_passes"] == 1
        assert after[cam]["batched_frames"] - before[cam]["batched_frames"] == 1
        assert after[cam]["frames_processed"] - before[cam]["frames_processed"] == 1


def test_a_bad_frame_of_one_camera_does_not_lose_the_other_cameras_frame(rig):
    before = rig.reports()
    sec = rig.next_sec()
    bad = frame("front", sec)
    bad.data = bytes(bad.data)[: len(bad.data) // 2]
    rig.image_pubs["front"].publish(bad)
    rig.image_pubs["left"].publish(frame("left", sec))
    assert rig.wait_output("left", "labels", sec) is not None, rig.node.output[-3000:]
    assert rig.wait_output("front", "labels", sec, timeout=0.5) is None
    assert rig.node.wait_for_output(f"dropping a bad frame from {INPUTS['front']} (camera front)", 5), \
        rig.node.output[-3000:]
    after = rig.reports()
    assert after["front"]["frames_rejected"] - before["front"]["frames_rejected"] == 1
    assert after["left"]["frames_rejected"] == before["left"]["frames_rejected"]
    assert after["left"]["frames_processed"] - before["left"]["frames_processed"] == 1
    assert after[""]["frames_rejected"] - before[""]["frames_rejected"] == 1
    assert after[""]["forward_passes"] - before[""]["forward_passes"] == 1  # the good frame alone
    assert after[""]["batched_frames"] == before[""]["batched_frames"]
    assert rig.node.proc.poll() is None


def test_auto_reliability_follows_each_cameras_publishers_as_they_change(rig):
    """qos_reliability auto: starting reliable (both cameras' publishers are), a best-effort publisher
    joining left makes left's subscription best effort while front stays reliable; its frames reach
    left's outputs; once it leaves, left is reliable again and still served."""
    def qos(report: dict, cam: str) -> str:
        return report[cam]["subscription_qos"].split(",")[0]

    def served(publisher, cam: str) -> bool:
        sec = rig.next_sec()
        publisher.publish(frame(cam, sec))
        return rig.wait_output(cam, "labels", sec, timeout=1.0) is not None

    assert {cam: qos(rig.reports(), cam) for cam in CAMERAS} == dict.fromkeys(CAMERAS, "reliability=reliable")
    camera = rig.peer.publisher(Image, INPUTS["left"], best_effort())
    try:
        assert wait_until(lambda: qos(rig.reports(), "left") == "reliability=best_effort", 10)
        assert qos(rig.reports(), "front") == "reliability=reliable"
        assert wait_until(lambda: served(camera, "left"), 10), rig.node.output[-3000:]
    finally:
        rig.peer.node.destroy_publisher(camera)
    assert wait_until(lambda: qos(rig.reports(), "left") == "reliability=reliable", 10)
    assert wait_until(lambda: served(rig.image_pubs["left"], "left"), 10), rig.node.output[-3000:]


def test_node_reads_and_writes_exactly_the_topics_of_each_camera(rig):
    """Each camera's image and camera_info; its depth only while its points are subscribed."""
    node = rig.peer.node

    def subscribed() -> set[str]:
        return set(dict(node.get_subscriber_names_and_types_by_node("bialign", NS)))

    inputs = {*INPUTS.values(), *(f"{NS}/{cam}/camera_info" for cam in CAMERAS)}
    assert subscribed() == inputs
    points = [node.create_subscription(PointCloud2, f"{NS}/{cam}/{OUTPUT_TOPICS['points']}", lambda _: None,
                                       best_effort()) for cam in CAMERAS]
    try:
        depth = {f"{NS}/{cam}/depth" for cam in CAMERAS}
        assert wait_until(lambda: subscribed() == inputs | depth, 10), subscribed()
    finally:
        for sub in points:
            node.destroy_subscription(sub)
    assert wait_until(lambda: subscribed() == inputs, 10), subscribed()
    published = set(dict(node.get_publisher_names_and_types_by_node("bialign", NS)))
    outputs = {f"{NS}/{cam}/{OUTPUT_TOPICS[key]}" for cam in CAMERAS for key in OUTPUT_TOPICS if key != "label_info"}
    assert outputs <= published
    assert published - outputs <= {f"{NS}/{cam}/segmentation/label_info" for cam in CAMERAS} | {
        "/diagnostics", "/rosout", "/parameter_events", f"{NS}/bialign/transition_event"}


@pytest.mark.parametrize(("value", "problem"), [("[front, front]", "(duplicate 'front')"),
                                                ("[front, 2nd]", "('2nd' is not a ROS name token)"),
                                                ("front", "allowed: a list of distinct names")],
                         ids=["duplicate", "not-a-token", "not-a-list"])
def test_bad_cameras_fail_at_start_naming_the_parameter(domain_id, untrained_weights, value, problem):
    node = start_node(domain_id, "-p", f"weights:={untrained_weights}", "-p", f"cameras:={value}")
    try:
        assert node.wait(60) == 1, node.output
    finally:
        node.stop()
    assert "parameter 'cameras': got" in node.output and problem in node.output, node.output
    assert "Traceback" not in node.output and "model" not in node.output
