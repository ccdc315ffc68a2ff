"""CDR written from NumPy: the same bytes as rclpy's serialisation of the same message, padding aside; and
CDR read without ROS: the fields rclpy's deserialisation gives, pixels viewed in place, clear errors."""

from __future__ import annotations

import struct
import subprocess
import sys

import numpy as np
import pytest

from bialign_ros.codec import CodecError, fill_image, image_to_array, message_to_rgb8, rgb8_to
from bialign_ros.codec.cdr import serialize_image, serialize_point_cloud
from bialign_ros.codec.cdr_reader import (
    CdrReader,
    deserialize_compressed_image,
    deserialize_image,
    header_stamp_ns,
)
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
    ours = serialize_image(_header(frame_id), array, encoding).tobytes()
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
    back = rclpy_serialization.deserialize_message(serialize_image(_header("c"), labels, "mono8").tobytes(),
                                                   msgs.Image)
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
                                 data, True).tobytes()
    _padding(reference, ours)
    assert rclpy_serialization.deserialize_message(ours, msgs.PointCloud2) == msg


@pytest.mark.parametrize(("encoding", "frame_id", "height", "width", "step"), [
    ("rgb8", "camera", 4, 6, 18),
    ("mono8", "", 3, 5, 8),               # no frame id; rows padded to 8 bytes
    ("bgr8", "ab", 2, 3, 9),              # odd string lengths: the fields after them are padded
    ("32FC1", "front_camera_optical", 2, 4, 16),
])
def test_image_fields_are_those_rclpy_deserialises(encoding, frame_id, height, width, step):
    data = np.random.default_rng(step).integers(0, 256, height * step, dtype=np.uint8)
    msg = msgs.Image(header=_header(frame_id, sec=-3 if frame_id == "ab" else 17), height=height, width=width,
                     encoding=encoding, is_bigendian=False, step=step)
    msg.data = data.tobytes()
    cdr = rclpy_serialization.serialize_message(msg)
    ours = deserialize_image(cdr)
    assert (ours.header.stamp.sec, ours.header.stamp.nanosec, ours.header.frame_id) == \
           (msg.header.stamp.sec, msg.header.stamp.nanosec, frame_id)
    assert (ours.height, ours.width, ours.encoding, ours.is_bigendian, ours.step) == \
           (height, width, encoding, False, step)
    np.testing.assert_array_equal(ours.data, data)
    assert not ours.data.flags.writeable and np.shares_memory(ours.data, np.frombuffer(cdr, np.uint8))
    np.testing.assert_array_equal(image_to_array(ours), image_to_array(msg))
    assert header_stamp_ns(cdr) == msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec


def test_compressed_image_fields_are_those_rclpy_deserialises():
    import cv2

    rgb = np.random.default_rng(0).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    msg = msgs.CompressedImage(header=_header("cam"), format="rgb8; png compressed bgr8")
    msg.data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()
    ours = deserialize_compressed_image(rclpy_serialization.serialize_message(msg))
    assert (ours.header.frame_id, ours.format) == ("cam", msg.format)
    np.testing.assert_array_equal(message_to_rgb8(ours), rgb)


def _big_endian_image(pixels: np.ndarray) -> bytes:
    """A mono16 Image in big-endian XCDR1, written field by field (rclpy writes only little-endian)."""
    h, w = pixels.shape
    frame_id = b"be\x00"
    body = struct.pack(">iiI", 5, 6, len(frame_id)) + frame_id + b"\x00"  # pad to 4
    body += struct.pack(">III", h, w, 7) + b"mono16\x00" + struct.pack(">B", 1)  # is_bigendian
    body += struct.pack(">II", w * 2, h * w * 2) + pixels.astype(">u2").tobytes()
    return b"\x00\x00\x00\x00" + body


def test_big_endian_cdr_and_big_endian_pixels_are_read():
    pixels = np.arange(12, dtype=np.uint16).reshape(3, 4) * 1000
    ours = deserialize_image(_big_endian_image(pixels))
    assert (ours.header.stamp.sec, ours.header.stamp.nanosec, ours.header.frame_id) == (5, 6, "be")
    assert (ours.height, ours.width, ours.encoding, ours.is_bigendian, ours.step) == (3, 4, "mono16", True, 8)
    np.testing.assert_array_equal(image_to_array(ours), pixels)


def test_truncated_or_foreign_bytes_are_codec_errors_naming_the_field():
    msg = msgs.Image(header=_header("camera"), height=2, width=2, encoding="mono8", step=2)
    msg.data = bytes(4)
    cdr = rclpy_serialization.serialize_message(msg)
    with pytest.raises(CodecError, match=rf"Image message of {len(cdr) - 1} bytes ends inside its field data"):
        deserialize_image(cdr[:-1])
    with pytest.raises(CodecError, match="ends inside its field header.frame_id"):
        deserialize_image(cdr[:16])
    with pytest.raises(CodecError, match="too short for a CDR encapsulation header"):
        header_stamp_ns(b"\x00\x01")
    with pytest.raises(CodecError, match="encapsulation 0x0002"):
        deserialize_image(b"\x00\x02\x00\x00" + cdr[4:])
    with pytest.raises(CodecError, match="header.frame_id is not UTF-8"):
        CdrReader(b"\x00\x01\x00\x00" + struct.pack("<iiI", 1, 2, 3) + b"\xff\xfe\x00").header()


@pytest.mark.parametrize("module", ["bialign_ros.codec.cdr", "bialign_ros.codec.cdr_reader"])
def test_cdr_modules_import_no_ros_package(module):
    code = (f"import sys, {module}; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('rclpy', 'sensor_msgs', 'rosbags')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
