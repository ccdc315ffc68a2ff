"""The node over DDS with one's own class table: a five-class checkpoint and every other parameter at its default.

Its labels, colours, class table, free space and grid must follow the checkpoint's five classes
(road, sidewalk, vehicle, person, other): the Cityscapes defaults of free_space_classes and
obstacle_classes become road and vehicle, person, other, while a class named explicitly that the
model lacks stops the node at start-up, naming the parameter.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy")
pytest.importorskip("nav_msgs")

from nav_msgs.msg import OccupancyGrid  # noqa: E402
from rcl_interfaces.srv import GetParameters  # noqa: E402
from ros_harness import RosPeer, best_effort, next_domain_id, reliable, start_node, wait_until  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

from bialign_ros.camera_geometry import CameraPose  # noqa: E402
from bialign_ros.codec import fill_image, image_to_array  # noqa: E402
from bialign_ros.ground_grid import FREE, OCCUPIED, GridSpec  # noqa: E402
from bialign_ros.ground_outputs import GroundOutputs  # noqa: E402
from bialign_ros.node import label_info_entries  # noqa: E402
from bialign_ros.node_interface import CLASS_TABLE_PARAMS, OUTPUT_TOPICS  # noqa: E402
from bialign_ros.node_params import color_to_hex  # noqa: E402
from bialign_ros.outputs import OutputSettings  # noqa: E402
from bialign_ros.segmenter import Segmenter  # noqa: E402
from bialign_ros.synthetic import FIVE_CLASS_COLORS, FIVE_CLASS_NAMES, render_scene  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

H, W = 64, 128
K = [64.0, 0.0, 63.5, 0.0, 64.0, 31.5, 0.0, 0.0, 1.0]
IMAGE_TOPICS = ("labels", "color", "free_space")


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    return render_scene(seed=3, height=H, width=W).image


@pytest.fixture(scope="module")
def reference(five_class_weights, frame):
    """The frame through the checkpoint in this process: what the node must publish."""
    seg = Segmenter.from_checkpoint(five_class_weights, device="cpu", precision="fp32")
    yield seg.segment(frame, confidence=True)
    seg.close()


@pytest.fixture(scope="module")
def rig(five_class_weights):
    domain = next_domain_id()
    node = start_node(domain, "-p", f"weights:={five_class_weights}")
    peer = RosPeer(domain)
    try:
        subs = {name: peer.collect(Image, OUTPUT_TOPICS[name], best_effort()) for name in IMAGE_TOPICS}
        subs["grid"] = peer.collect(OccupancyGrid, OUTPUT_TOPICS["grid"], best_effort())
        image_pub = peer.publisher(Image, "image", reliable())
        info_pub = peer.publisher(CameraInfo, "camera_info", reliable())
        # auto QoS subscribes best effort until it sees the reliable publisher: wait for the switch
        assert node.wait_for_output("reliability=reliable", 120), node.output
        assert peer.wait_for_subscribers(image_pub) and peer.wait_for_subscribers(info_pub), node.output
        for topic in (*IMAGE_TOPICS, "grid"):
            assert peer.wait_for_publishers(OUTPUT_TOPICS[topic]), topic
        yield {"node": node, "peer": peer, "subs": subs, "image": image_pub, "info": info_pub}
    finally:
        peer.close()
        node.stop()


def test_defaults_choose_the_ground_classes_of_the_models_table(rig):
    assert "free space: road; obstacles: vehicle, person, other" in rig["node"].output
    assert "Traceback" not in rig["node"].output


def test_node_publishes_the_class_table_of_the_checkpoint(rig):
    names = list(CLASS_TABLE_PARAMS)
    response = rig["peer"].call(GetParameters, "/bialign/get_parameters", GetParameters.Request(names=names))
    assert response is not None
    got = dict(zip(names, response.values))
    assert list(got["class_names"].string_array_value) == list(FIVE_CLASS_NAMES)
    assert list(got["class_colors"].string_array_value) == [color_to_hex(c) for c in FIVE_CLASS_COLORS]
    assert label_info_entries(FIVE_CLASS_NAMES, 255) == [*enumerate(FIVE_CLASS_NAMES), (255, "unlabeled")]


def test_labels_colours_free_space_and_grid_follow_the_five_classes(rig, frame, reference):
    info = CameraInfo(height=H, width=W, distortion_model="plumb_bob", d=[0.0] * 5)
    info.k = K
    rig["info"].publish(info)
    assert wait_until(lambda: rig["peer"].node.count_subscribers("camera_info") > 0, 10)
    grid = None
    for sec in range(10, 15):  # until camera_info has reached the node before a frame
        msg = fill_image(Image(), frame, "rgb8")
        msg.header.stamp.sec, msg.header.frame_id = sec, "cam_optical"
        rig["image"].publish(msg)
        grid = rig["subs"]["grid"].wait_for(lambda m, sec=sec: m.header.stamp.sec == sec, 15)
        if grid is not None:
            break
    assert grid is not None, rig["node"].output[-3000:]
    got = {name: image_to_array(rig["subs"][name].wait_for(lambda m, sec=sec: m.header.stamp.sec == sec, 10))
           for name in IMAGE_TOPICS}
    labels = got["labels"]
    assert labels.max() < 5 and len(np.unique(labels)) == 5
    np.testing.assert_array_equal(labels, reference.labels)
    np.testing.assert_array_equal(got["color"], np.asarray(FIVE_CLASS_COLORS, np.uint8)[labels])
    settings = OutputSettings()  # the node's defaults: road with confidence >= 0.5
    free = settings.free_space(reference, FIVE_CLASS_NAMES)
    assert free.any() and not free[labels != 0].any()
    np.testing.assert_array_equal(got["free_space"], free.view(np.uint8) * 255)
    ground = GroundOutputs(GridSpec(), FIVE_CLASS_NAMES, ("vehicle", "person", "other"))
    expected = ground.occupancy(K, CameraPose(height=1.5), reference, settings)
    cells = np.asarray(grid.data, np.int8).reshape(expected.shape)
    assert (cells == FREE).any() and (cells == OCCUPIED).any()
    np.testing.assert_array_equal(cells, expected)


@pytest.mark.parametrize("parameter", ["free_space_classes", "obstacle_classes"])
def test_a_class_named_explicitly_that_the_model_lacks_stops_the_node_naming_the_parameter(domain_id,
                                                                                          five_class_weights,
                                                                                          parameter):
    node = start_node(domain_id, "-p", f"weights:={five_class_weights}", "-p", f"{parameter}:=[car, person]")
    try:
        assert node.wait(120) == 1, node.output
    finally:
        node.stop()
    assert (f"parameter '{parameter}': unknown class name(s) ['car']; the model's classes are: road, sidewalk, "
            "vehicle, person, other") in node.output
    assert "Traceback" not in node.output
