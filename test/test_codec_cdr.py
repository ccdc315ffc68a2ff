"""CDR written from NumPy: the same bytes as rclpy's serialisation of the same message, padding aside."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from bialign_ros.codec import CodecError, fill_image, rgb8_to
from bialign_ros.codec.cdr import serialize_image, serialize_point_cloud
from bialign_ros.depth_points import POINT_FIELDS, POINT_STEP

rclpy_serialization = pytest.importorskip("rclpy.serialization")
msgs = pytest.importorskip("sensor_msgs.msg")
Header = pytest.importorskip("std_msgs.msg").Header


def _header(frame_id: str, sec: int = 1712345678, nanosec: int = 987654321):
    header = Header(frame_id=frame_id)
    header.stamp.sec, header.stamp.nanosec = sec, nanosec
    return header


def _padding(reference: bytes, ours: bytes) -> list[int]:
    """Offsets where the two differ: must be padding, which rmw leaves unset and we zero."""
    assert len(ours) == len(reference)
    differ = np.flatnonzero(np.frombuffer(reference, np.uint8) != np.frombuffer(ours, np.uint8))
    assert all(ours[i] == 0 for i in differ)
    return differ.tolist()


@pytest.mark.parametrize(("encoding", "frame_id", "shape"), [
    ("rgb8", "camera", (48, 64)),
    ("mono8", "", (5, 7)),          # no frame id: the string is its NUL alone
    ("mono8", "ab", (3, 5)),        # odd sizes: every field after a string needs its padding
    ("mono16", "front_camera_optical", (6, 10)),
    ("32FC1", "x", (4, 6)),
    ("nv12", "cam", (4, 6)),
])
def test_image_cdr_is_what_rclpy_serialises(encoding, frame_id, shape):
    rng = np.random.default_rng(len(frame_id))
    rgb = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    array = rng.random(shape, dtype=np.float32) * 10 if encoding == "32FC1" else rgb8_to(encoding, rgb) \
        if encoding != "mono16" else rng.integers(0, 65536, shape, dtype=np.uint16)
    msg = fill_image(msgs.Image(header=_header(frame_id)), array, encoding)
    reference = rclpy_serialization.serialize_message(msg)
    ours = serialize_image(_header(frame_id), array, encoding)
    assert len(_padding(reference, ours)) <= 6  # at most 3 pad bytes after each of the two strings
    back = rclpy_serialization.deserialize_message(ours, msgs.Image)
    assert back == msg


def test_image_cdr_refuses_what_fill_image_refuses():
    with pytest.raises(CodecError, match="needs uint8 data"):
        serialize_image(_header("c"), np.zeros((4, 4), np.float32), "mono8")
    with pytest.raises(CodecError, match=r"shape \(H, W, 3\)"):
        serialize_image(_header("c"), np.zeros((4, 4), np.uint8), "rgb8")


def test_image_cdr_of_a_non_contiguous_array_holds_its_pixels_in_order():
    labels = np.arange(64 * 48, dtype=np.uint32).reshape(64, 48).astype(np.uint8).T  # a transposed view
    back = rclpy_serialization.deserialize_message(serialize_image(_header("c"), labels, "mono8"), msgs.Image)
    assert (back.height, back.width, back.step) == (48, 64, 64)
    np.testing.assert_array_equal(np.frombuffer(back.data, np.uint8).reshape(48, 64), labels)


@pytest.mark.parametrize("frame_id", ["camera", "cam1", ""])
def test_point_cloud_cdr_is_what_rclpy_serialises(frame_id):
    points = 37
    data = np.random.default_rng(3).integers(0, 256, points * POINT_STEP, dtype=np.uint8)
    fields = [msgs.PointField(name=f.name, offset=f.offset, datatype=f.datatype, count=f.count) for f in POINT_FIELDS]
    msg = msgs.PointCloud2(header=_header(frame_id), height=1, width=points, fields=fields, is_bigendian=False,
                           point_step=POINT_STEP, row_step=POINT_STEP * points, is_dense=True)
    msg.data = data.tobytes()
    reference = rclpy_serialization.serialize_message(msg)
    ours = serialize_point_cloud(_header(frame_id), 1, points, POINT_FIELDS, False, POINT_STEP, POINT_STEP * points,
                                 data, True)
    _padding(reference, ours)
    assert rclpy_serialization.deserialize_message(ours, msgs.PointCloud2) == msg


def test_cdr_module_imports_no_ros_package():
    code = ("import sys, bialign_ros.codec.cdr; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('rclpy', 'sensor_msgs', 'rosbags')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
