"""The image codec: every encoding, row padding, endianness, compressed images and clear errors.

Messages come in three kinds: a plain object with the message's fields, a real rclpy
``sensor_msgs`` message and a rosbags message; filled messages of the last two also go through
their serialisers, as they would on a topic or in a bag.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import pytest

from bialign_ros.codec import (
    CONVERTIBLE_ENCODINGS,
    SUPPORTED_ENCODINGS,
    CodecError,
    compressed_to_rgb8,
    encode_compressed,
    fill_image,
    image_to_array,
    image_to_rgb8,
    message_to_rgb8,
    rgb8_to,
)

try:
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import CompressedImage as RosCompressedImage
    from sensor_msgs.msg import Image as RosImage
except ImportError:
    RosImage = None

try:
    from rosbags.typesys import Stores, get_typestore

    ROSBAGS_TYPES = get_typestore(Stores.ROS2_KILTED)
except ImportError:
    ROSBAGS_TYPES = None


@dataclass
class PlainImage:
    height: int = 0
    width: int = 0
    encoding: str = ""
    is_bigendian: int = 0
    step: int = 0
    data: Any = b""


@dataclass
class PlainCompressedImage:
    format: str = ""
    data: Any = b""


MESSAGE_KINDS = ["plain", "rclpy", "rosbags"]


def _require(kind: str) -> None:
    if kind == "rclpy" and RosImage is None:
        pytest.skip("rclpy and sensor_msgs are not installed")
    if kind == "rosbags" and ROSBAGS_TYPES is None:
        pytest.skip("rosbags is not installed")


def _rosbags_header() -> Any:
    header_type = ROSBAGS_TYPES.types["std_msgs/msg/Header"]
    time_type = ROSBAGS_TYPES.types["builtin_interfaces/msg/Time"]
    return header_type(stamp=time_type(sec=0, nanosec=0), frame_id="camera")


def new_image(kind: str) -> Any:
    """An empty Image message of the given kind."""
    _require(kind)
    if kind == "rclpy":
        return RosImage()
    if kind == "rosbags":
        image_type = ROSBAGS_TYPES.types["sensor_msgs/msg/Image"]
        return image_type(
            header=_rosbags_header(),
            height=0,
            width=0,
            encoding="",
            is_bigendian=0,
            step=0,
            data=np.zeros(0, dtype=np.uint8),
        )
    return PlainImage()


def new_compressed(kind: str) -> Any:
    """An empty CompressedImage message of the given kind."""
    _require(kind)
    if kind == "rclpy":
        return RosCompressedImage()
    if kind == "rosbags":
        compressed_type = ROSBAGS_TYPES.types["sensor_msgs/msg/CompressedImage"]
        return compressed_type(header=_rosbags_header(), format="", data=np.zeros(0, dtype=np.uint8))
    return PlainCompressedImage()


def over_the_wire(kind: str, msg: Any) -> Any:
    """Serialise and deserialise ``msg`` as a publisher/subscriber or bag writer/reader would."""
    if kind == "rclpy":
        return deserialize_message(serialize_message(msg), type(msg))
    if kind == "rosbags":
        return ROSBAGS_TYPES.deserialize_cdr(ROSBAGS_TYPES.serialize_cdr(msg, msg.__msgtype__), msg.__msgtype__)
    return msg


def gradient_rgb(height: int = 24, width: int = 34) -> np.ndarray:
    """A smooth, colourful test image: linear ramps, different in each channel (up to 48 x 48)."""
    assert height <= 48 and width <= 48
    yy, xx = np.mgrid[0:height, 0:width]
    return np.stack([yy * 4 + 20, xx * 3 + 10, yy * 2 + xx * 2 + 5], axis=-1).astype(np.uint8)


def grey_rgb(rgb: np.ndarray) -> np.ndarray:
    return np.repeat(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=-1)


def as_plain(pixels: np.ndarray, encoding: str, height: int, pad: int = 0, bigendian: bool = False) -> PlainImage:
    """A PlainImage holding ``pixels`` with ``pad`` garbage bytes after every row."""
    dtype = pixels.dtype.newbyteorder(">" if bigendian else "<")
    rows = np.ascontiguousarray(pixels, dtype=dtype).reshape(pixels.shape[0], -1).view(np.uint8)
    padded = np.full((rows.shape[0], rows.shape[1] + pad), 0xAB, dtype=np.uint8)
    padded[:, : rows.shape[1]] = rows
    return PlainImage(
        height=height,
        width=pixels.shape[1],
        encoding=encoding,
        is_bigendian=int(bigendian),
        step=padded.shape[1],
        data=padded.tobytes(),
    )


GREY = {"mono8", "8UC1", "mono16", "16UC1"}
# (max, mean) absolute error of the round trip on gradient_rgb(); grey encodings are compared
# with OpenCV's luma of the image. Bayer errors are bilinear demosaicking at the borders, YUV
# errors rounding and chroma subsampling.
TOLERANCE = {
    **{
        enc: (0, 0.0) for enc in ("rgb8", "bgr8", "8UC3", "rgba8", "bgra8", "rgb16", "bgr16", "rgba16", "bgra16", *GREY)
    },
    **{f"bayer_{p}{bits}": (6, 0.5) for p in ("rggb", "bggr", "gbrg", "grbg") for bits in (8, 16)},
    **{enc: (3, 1.0) for enc in ("uyvy", "yuv422", "yuyv", "yuv422_yuy2")},
    **{enc: (5, 1.2) for enc in ("nv12", "nv21")},
}


def test_every_convertible_encoding_has_a_tolerance():
    assert set(TOLERANCE) == set(CONVERTIBLE_ENCODINGS)
    assert set(CONVERTIBLE_ENCODINGS) <= set(SUPPORTED_ENCODINGS)


@pytest.mark.parametrize("kind", MESSAGE_KINDS)
@pytest.mark.parametrize("encoding", CONVERTIBLE_ENCODINGS)
def test_round_trip(encoding, kind):
    rgb = gradient_rgb()
    msg = over_the_wire(kind, fill_image(new_image(kind), rgb8_to(encoding, rgb), encoding))
    out = image_to_rgb8(msg)
    assert out.shape == rgb.shape and out.dtype == np.uint8 and out.flags.c_contiguous
    expected = grey_rgb(rgb) if encoding in GREY else rgb
    error = np.abs(out.astype(int) - expected)
    max_error, mean_error = TOLERANCE[encoding]
    assert error.max() <= max_error and error.mean() <= mean_error, (error.max(), error.mean())


@pytest.mark.parametrize("encoding", [e for e in CONVERTIBLE_ENCODINGS if TOLERANCE[e][0] == 0])
def test_lossless_round_trip_at_odd_size(encoding):
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    out = image_to_rgb8(fill_image(PlainImage(), rgb8_to(encoding, rgb), encoding))
    np.testing.assert_array_equal(out, grey_rgb(rgb) if encoding in GREY else rgb)


# The 2x2 filter cell at the top-left of the data, written out by hand, for the colour
# (R, G, B) = (200, 100, 30); ROS names the pattern by this cell, row by row.
BAYER_CELLS = {
    "rggb": [[200, 100], [100, 30]],
    "bggr": [[30, 100], [100, 200]],
    "gbrg": [[100, 30], [200, 100]],
    "grbg": [[100, 200], [30, 100]],
}


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("pattern", list(BAYER_CELLS))
def test_bayer_patterns_follow_ros_naming(pattern, bits):
    encoding = f"bayer_{pattern}{bits}"
    cell = np.array(BAYER_CELLS[pattern], dtype=np.uint16 if bits == 16 else np.uint8)
    if bits == 16:
        cell = cell * 257
    mosaic = np.tile(cell, (3, 4))
    out = image_to_rgb8(as_plain(mosaic, encoding, height=6))
    assert (out == (200, 100, 30)).all()
    flat = np.full((6, 8, 3), (200, 100, 30), dtype=np.uint8)
    np.testing.assert_array_equal(rgb8_to(encoding, flat), mosaic)


# Pure red in BT.601 limited range is Y = 82, U (Cb) = 90, V (Cr) = 240; mixing up U and V or
# the byte order gives a very different colour.
RED_Y, RED_U, RED_V = 82, 90, 240
YUV422_PAIRS = {
    "uyvy": [[RED_U, RED_Y], [RED_V, RED_Y]],
    "yuv422": [[RED_U, RED_Y], [RED_V, RED_Y]],
    "yuyv": [[RED_Y, RED_U], [RED_Y, RED_V]],
    "yuv422_yuy2": [[RED_Y, RED_U], [RED_Y, RED_V]],
}


@pytest.mark.parametrize("encoding", list(YUV422_PAIRS))
def test_yuv422_byte_order(encoding):
    pixels = np.tile(np.array(YUV422_PAIRS[encoding], dtype=np.uint8), (4, 3, 1))
    out = image_to_rgb8(as_plain(pixels, encoding, height=4))
    assert np.abs(out.astype(int) - (255, 0, 0)).max() <= 3
    red = np.full((4, 6, 3), (255, 0, 0), dtype=np.uint8)
    assert np.abs(rgb8_to(encoding, red).astype(int) - pixels).max() <= 1


@pytest.mark.parametrize("encoding, chroma", [("nv12", (RED_U, RED_V)), ("nv21", (RED_V, RED_U))])
def test_yuv420_plane_order(encoding, chroma):
    planes = np.vstack([np.full((4, 6), RED_Y, dtype=np.uint8), np.tile(np.array(chroma, np.uint8), (2, 3))])
    out = image_to_rgb8(as_plain(planes, encoding, height=4))
    assert np.abs(out.astype(int) - (255, 0, 0)).max() <= 3
    red = np.full((4, 6, 3), (255, 0, 0), dtype=np.uint8)
    assert np.abs(rgb8_to(encoding, red).astype(int) - planes).max() <= 1


def test_16_bit_keeps_the_high_byte():
    mono = np.array([[0x12FF, 0xFF00], [0x0001, 0x8080]], dtype=np.uint16)
    out = image_to_rgb8(as_plain(mono, "mono16", height=2))
    np.testing.assert_array_equal(out[..., 0], [[0x12, 0xFF], [0x00, 0x80]])
    bgr = np.array([[[0x0100, 0x0200, 0x03FF]]], dtype=np.uint16)
    np.testing.assert_array_equal(image_to_rgb8(as_plain(bgr, "bgr16", height=1)), [[[3, 2, 1]]])


PADDED_ENCODINGS = ["rgb8", "bgr8", "mono16", "rgba16", "uyvy", "bayer_grbg8", "nv21", "32FC1"]


def _pixels(encoding: str, rgb: np.ndarray) -> np.ndarray:
    if encoding == "32FC1":
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32) / 7.0
    return rgb8_to(encoding, rgb)


@pytest.mark.parametrize("encoding", PADDED_ENCODINGS)
def test_step_padding_is_skipped_without_copying(encoding):
    rgb = gradient_rgb(8, 10)
    pixels = _pixels(encoding, rgb)
    padded = as_plain(pixels, encoding, height=8, pad=8)
    assert padded.step > pixels[0].nbytes
    view = image_to_array(padded)
    np.testing.assert_array_equal(view, pixels)
    assert np.shares_memory(view, np.frombuffer(padded.data, dtype=np.uint8))
    if encoding in CONVERTIBLE_ENCODINGS:
        np.testing.assert_array_equal(image_to_rgb8(padded), image_to_rgb8(as_plain(pixels, encoding, height=8)))


@pytest.mark.parametrize("encoding", ["mono16", "rgb16", "bgra16", "16UC1", "bayer_rggb16", "32FC1"])
def test_big_endian_data_is_swapped(encoding):
    rgb = gradient_rgb(6, 8)
    pixels = _pixels(encoding, rgb)
    if pixels.dtype == np.uint16:
        pixels = pixels ^ np.uint16(0x5A)  # v * 257 reads the same in both byte orders
    big = as_plain(pixels, encoding, height=6, pad=4, bigendian=True)
    little = as_plain(pixels, encoding, height=6, pad=4)
    assert big.data != little.data
    values = image_to_array(big)
    assert values.dtype.isnative
    np.testing.assert_array_equal(values, pixels)
    assert not np.shares_memory(values, np.frombuffer(big.data, dtype=np.uint8))
    if encoding in CONVERTIBLE_ENCODINGS:
        np.testing.assert_array_equal(image_to_rgb8(big), image_to_rgb8(little))


def test_big_endian_flag_is_irrelevant_for_bytes():
    rgb = gradient_rgb(4, 6)
    np.testing.assert_array_equal(image_to_rgb8(as_plain(rgb, "rgb8", height=4, bigendian=True)), rgb)


@pytest.mark.parametrize("kind", MESSAGE_KINDS)
def test_unpadded_rgb8_is_a_read_only_view(kind):
    rgb = gradient_rgb()
    msg = over_the_wire(kind, fill_image(new_image(kind), rgb, "rgb8"))
    out = image_to_rgb8(msg)
    np.testing.assert_array_equal(out, rgb)
    assert np.shares_memory(out, np.frombuffer(msg.data, dtype=np.uint8))
    with pytest.raises(ValueError, match="read-only"):
        out[0, 0, 0] = 1


def test_padded_rgb8_becomes_contiguous():
    rgb = gradient_rgb(4, 6)
    out = image_to_rgb8(as_plain(rgb, "rgb8", height=4, pad=5))
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(out, rgb)


@pytest.mark.parametrize("kind", MESSAGE_KINDS)
def test_fill_image_sets_every_field(kind):
    mono = np.arange(12, dtype=np.uint16).reshape(3, 4) * 1000
    msg = over_the_wire(kind, fill_image(new_image(kind), mono, "mono16"))
    assert (msg.height, msg.width, msg.encoding, msg.is_bigendian, msg.step) == (3, 4, "mono16", 0, 8)
    assert bytes(msg.data) == mono.astype("<u2").tobytes()
    labels = np.arange(6, dtype=np.uint8).reshape(2, 3)
    msg = over_the_wire(kind, fill_image(new_image(kind), labels, "mono8"))
    np.testing.assert_array_equal(image_to_array(msg), labels)


def test_fill_image_with_checked_fields():
    _require("rclpy")
    try:
        msg = RosImage(check_fields=True)
    except (AssertionError, TypeError):
        pytest.skip("this sensor_msgs has no check_fields option")
    rgb = gradient_rgb()
    np.testing.assert_array_equal(image_to_rgb8(over_the_wire("rclpy", fill_image(msg, rgb, "bgr8"))), rgb[..., ::-1])


def test_fill_image_accepts_strided_and_big_endian_arrays():
    mono = np.arange(40, dtype=np.uint16).reshape(4, 10) * 1500
    strided = mono[:, ::2].astype(">u2")
    msg = fill_image(PlainImage(), strided, "mono16")
    assert (msg.width, msg.step, msg.is_bigendian) == (5, 10, 0)
    np.testing.assert_array_equal(image_to_array(msg), mono[:, ::2])


@pytest.mark.parametrize("kind", MESSAGE_KINDS)
@pytest.mark.parametrize("fmt, max_mean_error", [("jpeg", 1.0), ("png", 0.0)])
def test_compressed_round_trip(kind, fmt, max_mean_error):
    rgb = gradient_rgb(32, 48)
    msg = over_the_wire(kind, encode_compressed(new_compressed(kind), rgb, fmt=fmt, quality=95))
    assert msg.format == f"rgb8; {fmt} compressed bgr8"
    out = compressed_to_rgb8(msg)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - rgb).mean() <= max_mean_error


def test_jpeg_quality_changes_the_size():
    rgb = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    small = encode_compressed(PlainCompressedImage(), rgb, quality=20)
    large = encode_compressed(PlainCompressedImage(), rgb, quality=95)
    assert len(small.data) < len(large.data)


@pytest.mark.parametrize("format_field", ["png", "PNG", "bgr8; png compressed bgr8", "rgb8; jpeg compressed bgr8"])
def test_compressed_channel_order_and_formats(format_field):
    # Written by OpenCV directly, in its BGR order: pure red must come out as (255, 0, 0).
    bgr = np.zeros((8, 8, 3), dtype=np.uint8)
    bgr[..., 2] = 255
    ext = ".png" if "png" in format_field.lower() else ".jpg"
    msg = PlainCompressedImage(format=format_field, data=cv2.imencode(ext, bgr)[1].tobytes())
    assert np.abs(compressed_to_rgb8(msg).astype(int) - (255, 0, 0)).max() <= 2


def test_compressed_grey_and_16_bit_png():
    grey = gradient_rgb(8, 8)[..., 1]
    msg = encode_compressed(PlainCompressedImage(), grey, fmt="png")
    assert msg.format == "mono8; png compressed mono8"
    np.testing.assert_array_equal(compressed_to_rgb8(msg), np.repeat(grey[..., None], 3, axis=-1))
    wide = grey.astype(np.uint16) * 257 + 0x7F
    msg = PlainCompressedImage(format="mono16; png compressed mono16", data=cv2.imencode(".png", wide)[1].tobytes())
    np.testing.assert_array_equal(compressed_to_rgb8(msg)[..., 0], grey)


def _jpeg_bytes() -> bytes:
    return cv2.imencode(".jpg", gradient_rgb())[1].tobytes()


def _png_bytes() -> bytes:
    return cv2.imencode(".png", gradient_rgb())[1].tobytes()


ERROR_CASES = {
    "short data": (
        lambda: image_to_array(PlainImage(4, 4, "rgb8", 0, 12, bytes(40))),
        r"40 bytes, fewer than step \* height = 12 \* 4 = 48",
    ),
    "short nv12": (
        lambda: image_to_array(PlainImage(4, 4, "nv12", 0, 4, bytes(20))),
        r"20 bytes, fewer than step \* height \* 3 / 2 = 4 \* 6 = 24",
    ),
    "unknown encoding": (
        lambda: image_to_array(PlainImage(2, 2, "rgb9", 0, 6, bytes(12))),
        r"unknown image encoding 'rgb9'; supported: rgb8, .*bayer_rggb8, .*32FC1",
    ),
    "zero width": (lambda: image_to_array(PlainImage(2, 0, "rgb8", 0, 0, b"")), "zero size: width 0, height 2"),
    "zero height": (lambda: image_to_rgb8(PlainImage(0, 2, "mono8", 0, 2, b"")), "zero size: width 2, height 0"),
    "step too small": (
        lambda: image_to_array(PlainImage(2, 4, "rgb8", 0, 10, bytes(20))),
        r"step 10 is smaller than width \* bytes_per_pixel = 4 \* 3 = 12",
    ),
    "step not a multiple": (
        lambda: image_to_array(PlainImage(2, 3, "mono16", 0, 7, bytes(14))),
        "step 7 is not a multiple of the 2-byte element size of encoding 'mono16'",
    ),
    "odd yuv422 width": (
        lambda: image_to_rgb8(PlainImage(2, 3, "uyvy", 0, 6, bytes(12))),
        "'uyvy' needs an even width, got 3",
    ),
    "odd nv21 height": (
        lambda: image_to_rgb8(PlainImage(3, 4, "nv21", 0, 4, bytes(24))),
        "'nv21' needs an even height, got 3",
    ),
    "data not bytes": (
        lambda: image_to_array(PlainImage(1, 1, "mono8", 0, 1, None)),
        "NoneType is not a byte sequence",
    ),
    "not convertible": (
        lambda: image_to_rgb8(PlainImage(1, 1, "32FC1", 0, 4, bytes(4))),
        "cannot convert encoding '32FC1' to rgb8; convertible encodings: rgb8, .*mono16",
    ),
    "unknown to rgb8": (
        lambda: image_to_rgb8(PlainImage(1, 1, "hsv8", 0, 3, bytes(3))),
        "cannot convert unknown encoding 'hsv8'",
    ),
    "fill dtype": (
        lambda: fill_image(PlainImage(), np.zeros((2, 2), np.float32), "mono8"),
        "'mono8' needs uint8 data, got float32",
    ),
    "fill shape": (
        lambda: fill_image(PlainImage(), np.zeros((2, 2), np.uint8), "rgb8"),
        r"'rgb8' needs an array of shape \(H, W, 3\), got \(2, 2\)",
    ),
    "fill zero size": (lambda: fill_image(PlainImage(), np.zeros((0, 3), np.uint8), "mono8"), "zero size"),
    "fill nv12 rows": (
        lambda: fill_image(PlainImage(), np.zeros((5, 4), np.uint8), "nv12"),
        r"needs height \* 3 / 2 rows, got 5",
    ),
    "fill unknown": (
        lambda: fill_image(PlainImage(), np.zeros((2, 2), np.uint8), "grey"),
        "unknown image encoding 'grey'",
    ),
    "rgb8_to unknown": (lambda: rgb8_to("32FC1", gradient_rgb()), "cannot produce encoding '32FC1'"),
    "rgb8_to input": (lambda: rgb8_to("bgr8", np.zeros((4, 4), np.uint8)), "H x W x 3 uint8 RGB"),
    "rgb8_to odd width": (lambda: rgb8_to("yuyv", gradient_rgb(4, 5)), "'yuyv' needs an even width, got 5"),
    "corrupt jpeg": (
        lambda: compressed_to_rgb8(PlainCompressedImage("jpeg", b"\xff\xd8junk" * 20 + b"\xff\xd9")),
        "corrupt jpeg data: 122 bytes could not be decoded",
    ),
    "truncated jpeg": (
        lambda: compressed_to_rgb8(PlainCompressedImage("jpeg", _jpeg_bytes()[:300])),
        "corrupt jpeg data: 300 bytes without the end-of-image marker",
    ),
    "truncated png": (
        lambda: compressed_to_rgb8(PlainCompressedImage("png", _png_bytes()[:100])),
        "corrupt png data: 100 bytes could not be decoded",
    ),
    "empty compressed": (lambda: compressed_to_rgb8(PlainCompressedImage("png", b"")), "png image has no data"),
    "unsupported format": (
        lambda: compressed_to_rgb8(PlainCompressedImage("theora", _png_bytes())),
        "unsupported compressed format 'theora'; supported: jpeg, png",
    ),
    "compressed depth": (
        lambda: compressed_to_rgb8(PlainCompressedImage("16UC1; compressedDepth png", b"\0" * 20)),
        "compressedDepth.*not supported",
    ),
    "encode format": (
        lambda: encode_compressed(PlainCompressedImage(), gradient_rgb(), fmt="bmp"),
        "unsupported compressed format 'bmp'",
    ),
    "encode quality": (
        lambda: encode_compressed(PlainCompressedImage(), gradient_rgb(), quality=101),
        "quality must be in 0..100, got 101",
    ),
    "encode input": (
        lambda: encode_compressed(PlainCompressedImage(), np.zeros((4, 4, 3), np.uint16)),
        "H x W x 3 RGB or H x W grey uint8 array",
    ),
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_errors_name_the_problem(case):
    call, message = ERROR_CASES[case]
    with pytest.raises(CodecError, match=message):
        call()


def test_codec_errors_are_value_errors():
    assert issubclass(CodecError, ValueError)


def test_module_imports_no_ros_package():
    code = (
        "import sys, bialign_ros.codec; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('rclpy', 'sensor_msgs', 'rosbags')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("kind", MESSAGE_KINDS)
def test_any_camera_message_decodes_by_its_fields(kind):
    rgb = gradient_rgb()
    raw = over_the_wire(kind, fill_image(new_image(kind), rgb8_to("bgr8", rgb), "bgr8"))
    png = over_the_wire(kind, encode_compressed(new_compressed(kind), rgb, "png"))
    np.testing.assert_array_equal(message_to_rgb8(raw), rgb)
    np.testing.assert_array_equal(message_to_rgb8(png), rgb)
