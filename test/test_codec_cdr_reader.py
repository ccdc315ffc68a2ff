"""CDR read without ROS: the fields rclpy's deserialisation gives, pixels viewed in place, clear errors."""

from __future__ import annotations

import struct
import subprocess
import sys

import numpy as np
import pytest

from bialign_ros.codec import CodecError, image_to_array, message_to_rgb8
from bialign_ros.codec.cdr_reader import (
    CdrReader,
    deserialize_compressed_image,
    deserialize_image,
    header_stamp_ns,
)

rclpy_serialization = pytest.importorskip("rclpy.serialization")
msgs = pytest.importorskip("sensor_msgs.msg")
Header = pytest.importorskip("std_msgs.msg").Header


def _header(frame_id: str, sec: int = 1712345678, nanosec: int = 987654321):
    header = Header(frame_id=frame_id)
    header.stamp.sec, header.stamp.nanosec = sec, nanosec
    return header


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


def test_cdr_reader_imports_no_ros_package():
    code = ("import sys, bialign_ros.codec.cdr_reader; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('rclpy', 'sensor_msgs', 'rosbags')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
