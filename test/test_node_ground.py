"""The node's outputs in metres over DDS: the occupancy grid and the labelled points.

The geometry itself is tested exactly in test_ground_grid.py and test_depth_points.py; here the
node must publish what those functions give for its own labels and confidence, in the right
frames, with the camera frame's stamp, and say clearly why when an input is missing or wrong,
while the labels keep flowing.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("rclpy")
pytest.importorskip("nav_msgs")

from nav_msgs.msg import OccupancyGrid  # noqa: E402
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue  # noqa: E402
from rcl_interfaces.srv import SetParameters  # noqa: E402
from ros_harness import RosPeer, best_effort, next_domain_id, reliable, start_node, wait_until  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402

from bialign_ros.camera_geometry import CameraPose  # noqa: E402
from bialign_ros.classes import obstacle_classes_for  # noqa: E402
from bialign_ros.codec import fill_image  # noqa: E402
from bialign_ros.depth_points import POINT_DTYPE  # noqa: E402
from bialign_ros.ground_grid import GridSpec  # noqa: E402
from bialign_ros.ground_outputs import GroundOutputs  # noqa: E402
from bialign_ros.node import ERROR_LOG_THROTTLE_S  # noqa: E402
from bialign_ros.outputs import OutputSettings  # noqa: E402
from bialign_ros.synthetic import render_scene  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

H, W = 96, 160
K = [80.0, 0.0, 79.5, 0.0, 80.0, 47.5, 0.0, 0.0, 1.0]
POSE = CameraPose(height=1.4, pitch=0.25)
GRID = GridSpec(length=12.0, width=8.0, resolution=0.25)


def camera_info(k: list[float] = K) -> CameraInfo:
    info = CameraInfo(height=H, width=W, distortion_model="plumb_bob", d=[0.0] * 5)
    info.k = k
    info.header.frame_id = "cam_optical"
    return info


def stamped(msg, sec: int, frame_id: str = "cam_optical"):
    msg.header.stamp.sec, msg.header.frame_id = sec, frame_id
    return msg


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    return render_scene(seed=3, height=H, width=W).image


@pytest.fixture(scope="module")
def free_class(segmenter, frame) -> str:
    """The class the untrained model gives most pixels of the frame: free space, so the grid has free cells."""
    labels = segmenter.segment(frame, edges=False).labels
    return segmenter.meta.class_names[int(np.bincount(labels.ravel()).argmax())]


@pytest.fixture(scope="module")
def rig(untrained_weights, free_class):
    domain = next_domain_id()
    node = start_node(domain, "-p", f"weights:={untrained_weights}", "-p", "device:=cpu",
                      "-p", f"free_space_classes:=[{free_class}]", "-p", "free_space_min_confidence:=0.0",
                      "-p", f"camera_height:={POSE.height}", "-p", f"camera_pitch:={POSE.pitch}",
                      "-p", f"grid_length:={GRID.length}", "-p", f"grid_width:={GRID.width}",
                      "-p", f"grid_resolution:={GRID.resolution}", "-p", "grid_frame:=base_footprint",
                      "-p", "points_stride:=2", "-p", "depth_tolerance:=0.01", "-p", "drop_frames:=false")
    peer = RosPeer(domain)
    try:
        grid = peer.collect(OccupancyGrid, "segmentation/grid", best_effort())
        points = peer.collect(PointCloud2, "segmentation/points", best_effort())
        labels = peer.collect(Image, "segmentation/labels", best_effort())
        image_pub = peer.publisher(Image, "image", reliable(depth=20))
        info_pub = peer.publisher(CameraInfo, "camera_info", reliable(depth=20))
        depth_pub = peer.publisher(Image, "depth", reliable(depth=20))
        # auto QoS subscribes best effort until it sees the reliable publisher: wait for the switch
        assert node.wait_for_output("reliability=reliable", 120), node.output
        assert peer.wait_for_subscribers(image_pub) and peer.wait_for_subscribers(depth_pub), node.output
        assert peer.wait_for_publishers("segmentation/grid") and peer.wait_for_publishers("segmentation/points")
        yield {"node": node, "peer": peer, "grid": grid, "points": points, "labels": labels,
               "image": image_pub, "info": info_pub, "depth": depth_pub}
    finally:
        peer.close()
        node.stop()


def _wait(collector, sec: int, timeout: float = 30.0):
    return collector.wait_for(lambda m: m.header.stamp.sec == sec, timeout)


def _set(rig, name: str, value: float | bool) -> None:
    kind = {"type": ParameterType.PARAMETER_BOOL, "bool_value": value} if isinstance(value, bool) else \
        {"type": ParameterType.PARAMETER_DOUBLE, "double_value": value}
    request = SetParameters.Request(parameters=[Parameter(name=name, value=ParameterValue(**kind))])
    response = rig["peer"].call(SetParameters, "/bialign/set_parameters", request)
    assert response is not None and response.results[0].successful


def test_without_camera_info_the_grid_waits_and_the_node_says_why(rig, frame):
    rig["image"].publish(stamped(fill_image(Image(), frame, "rgb8"), 10))
    assert _wait(rig["labels"], 10) is not None, rig["node"].output
    assert rig["node"].wait_for_output("no camera_info on /camera_info yet: segmentation/grid needs", 10)
    assert _wait(rig["grid"], 10, timeout=1.0) is None


def test_grid_equals_the_geometry_of_the_nodes_labels(rig, segmenter, frame, free_class):
    rig["info"].publish(camera_info())
    assert wait_until(lambda: rig["peer"].node.count_subscribers("camera_info") > 0, 10)
    rig["image"].publish(stamped(fill_image(Image(), frame, "rgb8"), 20))
    msg = _wait(rig["grid"], 20)
    assert msg is not None, rig["node"].output[-3000:]
    assert msg.header.frame_id == "base_footprint" and msg.header.stamp.nanosec == 0
    assert (msg.info.width, msg.info.height, msg.info.resolution) == (GRID.cells_x, GRID.cells_y, GRID.resolution)
    assert (msg.info.origin.position.x, msg.info.origin.position.y) == (0.0, -GRID.width / 2)
    result = segmenter.segment(frame, edges=False, confidence=True)
    settings = OutputSettings(free_space_classes=(free_class,), free_space_min_confidence=0.0)
    names = segmenter.meta.class_names
    obstacles = obstacle_classes_for(names, settings.free_space_classes)
    expected = GroundOutputs(GRID, names, obstacles).occupancy(K, POSE, result, settings)
    got = np.asarray(msg.data, np.int8).reshape(GRID.shape)
    assert (expected == 0).any(), "the frame must show free space, else the comparison proves little"
    np.testing.assert_array_equal(got, expected)


def test_a_pose_below_the_ground_and_a_zero_focal_length_are_named_and_labels_keep_flowing(rig, frame):
    _set(rig, "camera_height", -0.5)
    rig["image"].publish(stamped(fill_image(Image(), frame, "rgb8"), 30))
    assert _wait(rig["labels"], 30) is not None
    assert rig["node"].wait_for_output("segmentation/grid not published: camera_height must be above the ground", 10)
    _set(rig, "camera_height", POSE.height)
    time.sleep(ERROR_LOG_THROTTLE_S)  # errors of one kind are throttled
    rig["info"].publish(camera_info([0.0, 0.0, 79.5, 0.0, 80.0, 47.5, 0.0, 0.0, 1.0]))
    time.sleep(0.5)
    rig["image"].publish(stamped(fill_image(Image(), frame, "rgb8"), 31))
    assert _wait(rig["labels"], 31) is not None
    assert rig["node"].wait_for_output("camera_info: ", 10)
    assert "focal" in rig["node"].output.split("camera_info: ")[-1].splitlines()[0]
    rig["info"].publish(camera_info())
    time.sleep(0.5)
    rig["image"].publish(stamped(fill_image(Image(), frame, "rgb8"), 32))
    assert _wait(rig["grid"], 32) is not None


def test_points_of_a_depth_plane_in_the_camera_frame(rig, segmenter, frame):
    z = np.full((H, W), 4.0, np.float32)
    z[:8] = np.nan  # invalid depth is skipped
    rig["depth"].publish(stamped(fill_image(Image(), z, "32FC1"), 40))
    time.sleep(0.3)
    rig["image"].publish(stamped(fill_image(Image(), frame, "rgb8"), 40))
    msg = _wait(rig["points"], 40)
    assert msg is not None, rig["node"].output[-3000:]
    assert msg.header.frame_id == "cam_optical" and msg.point_step == 16
    assert [(f.name, f.offset) for f in msg.fields] == [("x", 0), ("y", 4), ("z", 8), ("label", 12),
                                                         ("confidence", 13)]
    pts = np.frombuffer(bytes(msg.data), POINT_DTYPE)
    assert pts.size == msg.width == (H - 8) // 2 * (W // 2)
    np.testing.assert_allclose(pts["z"], 4.0)
    u, v = np.meshgrid(np.arange(0, W, 2), np.arange(8, H, 2))
    np.testing.assert_allclose(pts["x"], ((u - K[2]) * 4.0 / K[0]).ravel(), atol=1e-4)
    np.testing.assert_allclose(pts["y"], ((v - K[5]) * 4.0 / K[4]).ravel(), atol=1e-4)
    labels = segmenter.segment(frame, edges=False).labels
    np.testing.assert_array_equal(pts["label"], labels[8::2, ::2].ravel())


def test_depth_of_another_size_or_stamp_is_named_and_labels_keep_flowing(rig, frame):
    rig["depth"].publish(stamped(fill_image(Image(), np.ones((H // 2, W // 2), np.uint16), "16UC1"), 50))
    time.sleep(0.3)
    rig["image"].publish(stamped(fill_image(Image(), frame, "rgb8"), 50))
    assert _wait(rig["labels"], 50) is not None
    assert rig["node"].wait_for_output("the depth must be registered to the camera", 10)
    time.sleep(ERROR_LOG_THROTTLE_S)
    rig["image"].publish(stamped(fill_image(Image(), frame, "rgb8"), 55))
    assert _wait(rig["labels"], 55) is not None
    assert rig["node"].wait_for_output("no depth image on /depth within depth_tolerance", 10)
    assert _wait(rig["points"], 55, timeout=1.0) is None


def test_depth_is_received_only_while_the_points_are_wanted(rig):
    """Depth images, the largest input, are subscribed only while the points are switched on and
    subscribed: off at run time, the node drops its depth subscription; on again, it takes it back."""
    depth = rig["depth"]
    assert rig["peer"].wait_for_subscribers(depth, timeout=10)
    _set(rig, "publish_points", False)
    try:
        assert wait_until(lambda: depth.get_subscription_count() == 0, 10), "depth still subscribed"
    finally:
        _set(rig, "publish_points", True)
    assert rig["peer"].wait_for_subscribers(depth, timeout=10)
