"""The bialign node in its own process, driven over ROS topics from this test process.

One node (raw input, latest frame wins, started with ``--params-file config/bialign.yaml``)
serves the tests of this module in namespace /cam on a domain of its own.
"""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

pytest.importorskip("rclpy")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue  # noqa: E402
from rcl_interfaces.srv import DescribeParameters, GetParameters, SetParameters  # noqa: E402
from rclpy.serialization import serialize_message  # noqa: E402
from ros_harness import (  # noqa: E402
    ROOT,
    RosPeer,
    best_effort,
    next_domain_id,
    reliable,
    start_node,
    wait_until,
)
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

from bialign_ros.codec import fill_image, rgb8_to  # noqa: E402
from bialign_ros.node import ERROR_LOG_THROTTLE_S  # noqa: E402
from bialign_ros.node_interface import DIAGNOSTICS_TOPIC, OUTPUT_TOPICS  # noqa: E402
from bialign_ros.node_params import PARAM_SPECS, color_to_hex  # noqa: E402
from bialign_ros.node_report import THREAD_GROUPS, parse_key_values  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

H, W = 96, 160
NS = "/cam"
ENCODINGS = ["rgb8", "bgr8", "rgba8", "bgra8", "mono8", "bayer_rggb8", "bayer_bggr8", "bayer_gbrg8",
             "bayer_grbg8", "yuv422", "yuv422_yuy2", "uyvy", "rgb16", "bgr16", "mono16", "bayer_rggb16"]


def scene(seed: int, h: int = H, w: int = W) -> np.ndarray:
    """A smooth random RGB image (blocks of colour), so every encoding keeps its structure."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8)
    return np.repeat(np.repeat(small, 8, 0), 8, 1)


def image_msg(rgb: np.ndarray, encoding: str, sec: int, frame_id: str = "cam_optical") -> Image:
    """An Image message of ``rgb`` in ``encoding`` with a recognisable stamp."""
    msg = fill_image(Image(), rgb8_to(encoding, rgb), encoding)
    msg.header.stamp.sec = sec
    msg.header.stamp.nanosec = 123
    msg.header.frame_id = frame_id
    return msg


class Rig:
    """The node process, the peer node of this test process and the subscriptions to the outputs."""

    def __init__(self, weights: str) -> None:
        self.domain = next_domain_id()
        self.node = start_node(self.domain, "--params-file", str(ROOT / "config/bialign.yaml"),
                               "-p", f"weights:={weights}", "-p", "stats_log_period:=1.0",
                               "-r", f"__ns:={NS}", "-r", "image:=camera/image_raw")
        self.peer = RosPeer(self.domain)
        self.outputs = {key: self.peer.collect(Image, f"{NS}/segmentation/{key}", best_effort())
                        for key in ("labels", "edges", "color", "overlay")}
        self.camera_info_out = self.peer.collect(CameraInfo, f"{NS}/segmentation/camera_info")
        self.diagnostics = self.peer.collect(DiagnosticArray, "/diagnostics")
        self.image_pub = self.peer.publisher(Image, f"{NS}/camera/image_raw", reliable(depth=50))
        self.info_pub = self.peer.publisher(CameraInfo, f"{NS}/camera/camera_info")
        self.sec = 1000

    def ready(self) -> None:
        """Wait until the node matched the reliable camera publisher and every output reader."""
        assert self.node.wait_for_output("reliability=reliable", 60), self.node.output
        assert self.peer.wait_for_subscribers(self.image_pub), self.node.output
        for key in self.outputs:
            assert self.peer.wait_for_publishers(f"{NS}/segmentation/{key}"), key

    def send(self, msg: Image | bytes) -> None:
        self.image_pub.publish(msg)

    def next_sec(self) -> int:
        self.sec += 1
        return self.sec

    def wait_output(self, key: str, sec: int, timeout: float = 20.0) -> Image | None:
        """The output ``key`` whose stamp has ``sec``."""
        return self.outputs[key].wait_for(lambda m: m.header.stamp.sec == sec, timeout)

    def latest_report(self, timeout: float = 5.0) -> dict:
        """The node's next /diagnostics values after now."""
        start = len(self.diagnostics.items)
        assert wait_until(lambda: len(self.diagnostics.items) > start, timeout), "no /diagnostics from the node"
        item = self.diagnostics.items[-1].msg
        return parse_key_values([(kv.key, kv.value) for kv in item.status[0].values])

    def close(self) -> int:
        self.peer.close()
        try:
            return self.node.interrupt()
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


def _mosaic(rgb: np.ndarray, pattern: str) -> np.ndarray:
    """``rgb`` seen through a Bayer filter whose top-left 2x2 cell reads ``pattern`` (e.g. ``rggb``)."""
    out = np.empty(rgb.shape[:2], np.uint8)
    for index, colour in enumerate(pattern):
        dy, dx = divmod(index, 2)
        out[dy::2, dx::2] = rgb[dy::2, dx::2, "rgb".index(colour)]
    return out


def _yuv422(rgb: np.ndarray, order: str) -> np.ndarray:
    """H x W x 2 bytes of ``rgb`` (chroma equal in each pixel pair) in BT.601 limited range, ``order``
    naming the bytes of a pixel pair, e.g. ``uyvy``."""
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    planes = {"y": 16 + 0.257 * r + 0.504 * g + 0.098 * b, "u": 128 - 0.148 * r - 0.291 * g + 0.439 * b,
              "v": 128 + 0.439 * r - 0.368 * g - 0.071 * b}
    planes = {k: np.clip(np.round(p), 0, 255).astype(np.uint8) for k, p in planes.items()}
    pairs = np.empty((rgb.shape[0], rgb.shape[1] // 2, 4), np.uint8)
    second = order.index("y", order.index("y") + 1)
    for i, key in enumerate(order):
        pixel = 1 if i == second else 0  # chroma and the first luma byte come from the pair's left pixel
        pairs[..., i] = planes[key][:, pixel::2]
    return pairs.reshape(rgb.shape[0], rgb.shape[1], 2)


def camera_frame(rgb: np.ndarray, encoding: str, sec: int) -> tuple[Image, np.ndarray]:
    """A camera Image of ``rgb`` in ``encoding``, written byte by byte here (not by the codec), and the
    RGB image a correct decoder makes of it (channels reordered by hand, OpenCV's demosaicking and
    BT.601 conversion named explicitly), so a decoding bug in the node cannot cancel out."""
    h, w = rgb.shape[:2]
    low = np.random.default_rng(sec).integers(0, 256, rgb.shape, dtype=np.uint16)  # ignored low bytes
    expected = rgb
    alpha = np.full((h, w, 1), 77, np.uint8)
    if encoding in ("rgb8", "bgr8", "rgba8", "bgra8"):
        pixels = rgb if encoding[0] == "r" else rgb[..., ::-1]
        pixels = np.concatenate([pixels, alpha], axis=2) if "a" in encoding else pixels
    elif encoding == "mono8":
        pixels = rgb[..., 1]
        expected = np.repeat(pixels[..., None], 3, axis=2)
    elif encoding.startswith("bayer_"):
        pattern = encoding[6:10]
        pixels = _mosaic(rgb, pattern)
        expected = cv2.cvtColor(pixels, getattr(cv2, f"COLOR_Bayer{pattern.upper()}2RGB"))
        if encoding.endswith("16"):
            pixels = (pixels.astype(np.uint16) << 8) | low[..., 0]
    elif encoding in ("yuv422", "uyvy", "yuv422_yuy2"):
        uyvy = encoding != "yuv422_yuy2"
        pixels = _yuv422(rgb, "uyvy" if uyvy else "yuyv")
        expected = cv2.cvtColor(pixels, cv2.COLOR_YUV2RGB_UYVY if uyvy else cv2.COLOR_YUV2RGB_YUY2)
    elif encoding in ("rgb16", "bgr16"):
        pixels = ((rgb if encoding[0] == "r" else rgb[..., ::-1]).astype(np.uint16) << 8) | low
    elif encoding == "mono16":
        pixels = (rgb[..., 1].astype(np.uint16) << 8) | low[..., 0]
        expected = np.repeat(rgb[..., 1:2], 3, axis=2)
    else:
        raise ValueError(f"no hand-made frame for {encoding}")
    pixels = np.ascontiguousarray(pixels)
    msg = Image(height=h, width=w, encoding=encoding, is_bigendian=0, step=pixels.nbytes // h,
                data=pixels.tobytes())
    msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id = sec, 123, "cam_optical"
    return msg, np.ascontiguousarray(expected)

@pytest.mark.parametrize("encoding", ENCODINGS)
def test_every_encoding_gives_labels_equal_to_the_segmenter(rig, segmenter, encoding):
    sec = rig.next_sec()
    rgb = scene(sec)
    msg, expected_rgb = camera_frame(rgb, encoding, sec)
    if not encoding.startswith("mono"):  # the hand-made frame shows the scene (inside its colour blocks)
        inner = np.zeros((H, W), bool)
        inner[1::8, 1::8] = inner[6::8, 6::8] = True
        assert np.abs(expected_rgb.astype(int) - rgb)[inner].max() <= 2
    rig.send(msg)
    out = {key: rig.wait_output(key, sec) for key in rig.outputs}
    for key, m in out.items():
        assert m is not None, f"no {key} for {encoding}\n{rig.node.output[-3000:]}"
        assert (m.header.stamp.sec, m.header.stamp.nanosec, m.header.frame_id) == (sec, 123, "cam_optical")
        assert (m.height, m.width) == (H, W)
    assert out["labels"].encoding == "mono8" and out["edges"].encoding == "mono8"
    assert out["color"].encoding == "rgb8" and out["overlay"].encoding == "rgb8"
    expected = segmenter.segment(expected_rgb)
    labels = np.frombuffer(out["labels"].data, np.uint8).reshape(H, W)
    np.testing.assert_array_equal(labels, expected.labels)
    edges = np.frombuffer(out["edges"].data, np.uint8).reshape(H, W)
    assert np.abs(edges.astype(int) - expected.edges_u8()).max() <= 1
    color = np.frombuffer(out["color"].data, np.uint8).reshape(H, W, 3)
    np.testing.assert_array_equal(color, segmenter.colorize(expected.labels))
    # The overlay shows the decoded image itself (alpha 0.5 from config/bialign.yaml).
    shown = np.frombuffer(out["overlay"].data, np.uint8).reshape(H, W, 3)
    blend = (expected_rgb.astype(np.float64) + color) / 2
    assert np.abs(shown - blend).max() <= 1


def test_padded_rows_and_big_endian_data_are_read_correctly(rig, segmenter):
    rgb = scene(7)
    padded = image_msg(rgb, "rgb8", rig.next_sec())
    rows = np.zeros((H, W * 3 + 16), np.uint8)
    rows[:, : W * 3] = rgb.reshape(H, -1)
    padded.step, padded.data = W * 3 + 16, rows.tobytes()
    big = image_msg(rgb, "rgb16", rig.next_sec())
    big.is_bigendian, big.data = 1, (rgb.astype(">u2") * 257).tobytes()
    for msg in (padded, big):
        rig.send(msg)
        out = rig.wait_output("labels", msg.header.stamp.sec)
        assert out is not None, rig.node.output[-3000:]
        labels = np.frombuffer(out.data, np.uint8).reshape(H, W)
        np.testing.assert_array_equal(labels, segmenter.segment(rgb).labels)


def test_camera_info_is_restamped_to_each_label_image(rig):
    info = CameraInfo(width=W, height=H, distortion_model="plumb_bob")
    info.k = [100.0, 0.0, W / 2, 0.0, 100.0, H / 2, 0.0, 0.0, 1.0]
    info.header.frame_id = "cam_optical"
    rig.info_pub.publish(info)
    time.sleep(0.5)
    sec = rig.next_sec()
    rig.send(image_msg(scene(sec), "rgb8", sec))
    out = rig.camera_info_out.wait_for(lambda m: m.header.stamp.sec == sec, 20)
    assert out is not None, "segmentation/camera_info missing"
    assert out.header.frame_id == "cam_optical" and out.header.stamp.nanosec == 123
    assert list(out.k) == list(info.k) and (out.width, out.height) == (W, H)


def test_bad_frames_are_dropped_and_counted_and_good_frames_still_processed(rig):
    before = rig.latest_report()
    short = image_msg(scene(1), "rgb8", 0)
    short.data = bytes(short.data)[: W * 3 * 10]
    unknown = image_msg(scene(2), "rgb8", 0)
    unknown.encoding = "rgb42"
    empty = Image(encoding="rgb8")
    wrong_step = image_msg(scene(3), "rgb8", 0)
    wrong_step.step = W  # smaller than width * 3
    truncated = image_msg(scene(4), "rgb8", 0)  # CDR that ends inside its pixels, published as bytes
    for bad in (short, unknown, empty, wrong_step, truncated):
        bad.header.stamp.sec = rig.next_sec()
        if bad is truncated:
            time.sleep(ERROR_LOG_THROTTLE_S)  # out of the throttled error's window: its line is checked below
        rig.send(serialize_message(bad)[:200] if bad is truncated else bad)
        time.sleep(0.3)  # let the worker take it before the good frame could replace it
        sec = rig.next_sec()
        rig.send(image_msg(scene(sec), "rgb8", sec))
        assert rig.wait_output("labels", sec) is not None, rig.node.output[-3000:]
        assert rig.wait_output("labels", bad.header.stamp.sec, timeout=0.1) is None
    assert rig.node.wait_for_output("dropping a bad frame", 5)
    assert "fewer than step" in rig.node.output
    assert "Image message of 200 bytes ends inside its field data" in rig.node.output
    after = rig.latest_report()
    assert after["frames_rejected"] - before["frames_rejected"] == 5
    assert after["frames_processed"] - before["frames_processed"] >= 4
    assert rig.node.proc.poll() is None
    # A burst of bad frames logs one line per ERROR_LOG_THROTTLE_S, not one per frame.
    time.sleep(ERROR_LOG_THROTTLE_S)  # out of the window of the lines above
    logged = rig.node.output.count("dropping a bad frame")
    started = time.monotonic()
    for _ in range(10):
        unknown.header.stamp.sec = rig.next_sec()
        rig.send(unknown)
        time.sleep(0.05)  # slower than decoding: the worker takes (and rejects) each one
    elapsed = time.monotonic() - started
    sec = rig.next_sec()
    rig.send(image_msg(scene(sec), "rgb8", sec))
    assert rig.wait_output("labels", sec) is not None
    rejected = rig.latest_report()["frames_rejected"] - after["frames_rejected"]
    lines = rig.node.output.count("dropping a bad frame") - logged
    assert rejected >= 8 and 1 <= lines <= 1 + elapsed / ERROR_LOG_THROTTLE_S, (rejected, lines, elapsed)


def test_burst_faster_than_inference_keeps_latency_bounded(rig):
    """Latest frame wins: a burst is thinned out, the last frame always comes out, drops are counted."""
    before = rig.latest_report()
    n = 40
    rgb = scene(99)
    secs = []
    for _ in range(n):
        sec = rig.next_sec()
        secs.append(sec)
        rig.send(image_msg(rgb, "rgb8", sec))
        time.sleep(0.002)
    sent_at = time.monotonic()
    last = rig.wait_output("labels", secs[-1])
    waited = time.monotonic() - sent_at
    assert last is not None, rig.node.output[-3000:]
    after = rig.latest_report()
    # The last frame waited for the frame in flight and its own turn, not for the burst: a few of
    # the node's processing periods (as it reports them) plus transport; a queue takes ~n periods.
    period = after["processing_mean_ms"] / 1e3
    assert waited < 10 * period + 0.5, (waited, period)
    assert after["latency_p99_ms"] / 1e3 < 10 * period + 0.5
    got = [m.header.stamp.sec for m in rig.outputs["labels"].msgs if m.header.stamp.sec in secs]
    assert got == sorted(got) and len(got) < n
    delta = {k: after[k] - before[k] for k in ("frames_received", "frames_processed", "frames_dropped")}
    # A keep-last subscription lets DDS replace a frame the executor had not taken yet (rare).
    assert len(got) <= delta["frames_received"] <= n
    assert delta["frames_processed"] == len(got)
    assert delta["frames_dropped"] == delta["frames_received"] - len(got) > 0


def test_diagnostics_report_rates_latency_device_and_model(rig):
    sec = rig.next_sec()
    rig.send(image_msg(scene(sec), "rgb8", sec))
    assert rig.wait_output("labels", sec) is not None
    arrays = [m for m in rig.diagnostics.msgs if m.status and m.status[0].name.startswith("bialign")]
    assert arrays, "no /diagnostics from the node"
    status = arrays[-1].status[0]
    values = rig.latest_report()
    assert values["device"] == "cpu" and values["model"] == "bialign_dfnet2"
    assert values["input_topic"] == f"{NS}/camera/image_raw"
    assert values["frames_processed"] >= 1 and values["latency_mean_ms"] > 0
    assert values["cpu_percent"] > 0  # the process CPU of the last second: the executor spins at least
    # and by thread group (Linux, in clock ticks): every group named, together no more than the process
    groups = {key: value for key, value in values.items() if key.startswith("cpu_") and key != "cpu_percent"}
    assert set(groups) == {f"cpu_{group}_percent" for group in THREAD_GROUPS}
    assert min(groups.values()) >= 0 and sum(groups.values()) <= values["cpu_percent"] + 5
    assert status.hardware_id == "cpu"
    assert rig.node.wait_for_output("latency mean", 5)


def test_node_publishes_exactly_its_documented_topics(rig):
    names = dict(rig.peer.node.get_publisher_names_and_types_by_node("bialign", NS))
    outputs = {f"{NS}/{topic}" for key, topic in OUTPUT_TOPICS.items() if key != "label_info"}
    assert outputs <= set(names)
    assert set(names) - outputs <= {f"{NS}/{OUTPUT_TOPICS['label_info']}", DIAGNOSTICS_TOPIC, "/rosout",
                                    "/parameter_events", f"{NS}/bialign/transition_event"}
    assert names[f"{NS}/{OUTPUT_TOPICS['labels']}"] == ["sensor_msgs/msg/Image"]
    subscriptions = dict(rig.peer.node.get_subscriber_names_and_types_by_node("bialign", NS))
    assert {f"{NS}/camera/image_raw", f"{NS}/camera/camera_info"} <= set(subscriptions)


def test_parameters_come_from_the_params_file_and_describe_themselves(rig, segmenter):
    names = [s.name for s in PARAM_SPECS] + ["class_names", "class_colors"]
    resp = rig.peer.call(GetParameters, f"{NS}/bialign/get_parameters", GetParameters.Request(names=names))
    assert resp is not None
    got = dict(zip(names, resp.values))
    assert got["device"].string_value == "auto" and got["qos_depth"].integer_value == 5
    assert got["stats_log_period"].double_value == 1.0  # -p after --params-file wins
    assert list(got["class_names"].string_array_value) == list(segmenter.meta.class_names)
    assert list(got["class_colors"].string_array_value) == [color_to_hex(c) for c in segmenter.meta.class_colors]
    desc = rig.peer.call(DescribeParameters, f"{NS}/bialign/describe_parameters",
                         DescribeParameters.Request(names=["input_scale", "device", "class_names"]))
    scale, device, class_names = desc.descriptors
    assert scale.floating_point_range[0].from_value == 0.05 and scale.floating_point_range[0].to_value == 4.0
    assert "cuda:N" in device.additional_constraints and device.description
    assert class_names.read_only


def _set(rig: Rig, name: str, value: ParameterValue) -> object:
    request = SetParameters.Request(parameters=[Parameter(name=name, value=value)])
    return rig.peer.call(SetParameters, f"{NS}/bialign/set_parameters", request).results[0]


def _rendered(before: dict, after: dict) -> dict[str, float]:
    """How many times each optional output was computed between two reports."""
    return {key[len("rendered_"):]: after[key] - before[key] for key in after if key.startswith("rendered_")}


def _rgb(msg: Image) -> np.ndarray:
    return np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.width, 3)


def test_optional_outputs_are_computed_only_while_subscribed_and_switched_on(rig):
    """The node computes confidence (nobody subscribes here) never, and overlay not while switched off."""
    off = ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=False)
    on = ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=True)
    before = rig.latest_report()
    assert _set(rig, "publish_overlay", off).successful
    try:
        sec = rig.next_sec()
        rig.send(image_msg(scene(sec), "rgb8", sec))
        assert rig.wait_output("labels", sec) is not None and rig.wait_output("color", sec) is not None
        assert rig.wait_output("overlay", sec, timeout=1.0) is None
    finally:
        assert _set(rig, "publish_overlay", on).successful
    mid = rig.latest_report()
    assert _rendered(before, mid) == {"edges": 1, "color": 1, "overlay": 0, "confidence": 0, "free_space": 0}
    confidence = rig.peer.collect(Image, f"{NS}/segmentation/confidence", best_effort())

    def confidence_of_a_new_frame() -> Image | None:
        sec = rig.next_sec()
        rig.send(image_msg(scene(sec), "rgb8", sec))
        return confidence.wait_for(lambda m: m.header.stamp.sec == sec, 1.0)

    assert wait_until(confidence_of_a_new_frame, 20), "no confidence once subscribed"  # after discovery
    assert _rendered(mid, rig.latest_report())["confidence"] >= 1


def test_overlay_alpha_changes_at_runtime_and_bad_values_are_refused(rig):
    rgb = scene(11)
    try:
        for alpha in (0.0, 1.0):
            assert _set(rig, "overlay_alpha", ParameterValue(type=ParameterType.PARAMETER_DOUBLE,
                                                             double_value=alpha)).successful
            sec = rig.next_sec()
            rig.send(image_msg(rgb, "rgb8", sec))
            shown, color = rig.wait_output("overlay", sec), rig.wait_output("color", sec)
            assert shown is not None and color is not None
            # alpha is the weight of the class colours: 0 shows the camera image, 1 the colours alone
            np.testing.assert_array_equal(_rgb(shown), rgb if alpha == 0.0 else _rgb(color))
    finally:
        assert _set(rig, "overlay_alpha", ParameterValue(type=ParameterType.PARAMETER_DOUBLE,
                                                         double_value=0.5)).successful
    bad = _set(rig, "overlay_alpha", ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=2.0))
    assert not bad.successful and "overlay_alpha" in bad.reason
    read_only = _set(rig, "device", ParameterValue(type=ParameterType.PARAMETER_STRING, string_value="cpu"))
    assert not read_only.successful


def test_ctrl_c_stops_the_node_cleanly(untrained_weights):
    """A second node in its own domain ends with code 0 and no traceback on SIGINT (SIGTERM: see
    test_node_compressed.py)."""
    node = start_node(next_domain_id(), "-p", f"weights:={untrained_weights}")
    try:
        assert node.wait_for_output("subscribed to", 60), node.output
        assert node.interrupt() == 0, node.output
        assert "Traceback" not in node.output
    finally:
        node.stop()
