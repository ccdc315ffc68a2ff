"""Conversions between every camera encoding and the H x W x 3 uint8 RGB the network takes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from bialign_ros.codec.encodings import BAYER_PATTERNS, SUPPORTED_ENCODINGS, check_even_size
from bialign_ros.codec.errors import CodecError
from bialign_ros.codec.raw import image_to_array


def _high_byte(pixels: np.ndarray) -> np.ndarray:
    return (pixels >> 8).astype(np.uint8)


def _widen(pixels: np.ndarray) -> np.ndarray:
    # 257 = 0x0101 puts the byte in both halves, so 0 -> 0, 255 -> 65535 and >> 8 inverts it.
    return pixels.astype(np.uint16) * np.uint16(257)


def _cvt(code: int) -> Callable[[np.ndarray], np.ndarray]:
    return lambda pixels: cv2.cvtColor(pixels, code)


def _contiguous_rgb(pixels: np.ndarray) -> np.ndarray:
    return pixels if pixels.flags.c_contiguous else np.ascontiguousarray(pixels)


def _on_high_byte(convert: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    return lambda pixels: convert(_high_byte(pixels))


def _widened(convert: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    return lambda rgb: _widen(convert(rgb))


def _mosaic(pattern: str) -> Callable[[np.ndarray], np.ndarray]:
    """Sample an RGB image through a Bayer filter whose top-left 2x2 cell reads ``pattern``."""
    channel = {"r": 0, "g": 1, "b": 2}

    def sample(rgb: np.ndarray) -> np.ndarray:
        out = np.empty(rgb.shape[:2], dtype=rgb.dtype)
        for index, colour in enumerate(pattern):
            dy, dx = divmod(index, 2)
            out[dy::2, dx::2] = rgb[dy::2, dx::2, channel[colour]]
        return out

    return sample


def _semi_planar(v_first: bool) -> Callable[[np.ndarray], np.ndarray]:
    """RGB -> nv12 (U then V) or nv21 (V then U), through OpenCV's planar I420."""

    def convert(rgb: np.ndarray) -> np.ndarray:
        height, width = rgb.shape[:2]
        i420 = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)
        quarter = (height // 2) * (width // 2)
        u_plane, v_plane = i420[height:].reshape(2, quarter)
        out = np.empty((height * 3 // 2, width), dtype=np.uint8)
        out[:height] = i420[:height]
        interleaved = out[height:].reshape(quarter, 2)
        interleaved[:, 0], interleaved[:, 1] = (v_plane, u_plane) if v_first else (u_plane, v_plane)
        return out

    return convert


# OpenCV's legacy Bayer names (BayerBG, ...) are offset by one pixel from the ROS ones; its
# BayerRGGB-style aliases name the top-left cell as ROS does (checked by the tests).
_BAYER_TO_RGB = {p: getattr(cv2, f"COLOR_Bayer{p.upper()}2RGB") for p in BAYER_PATTERNS}

_TO_RGB8: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "rgb8": _contiguous_rgb,
    "bgr8": _cvt(cv2.COLOR_BGR2RGB),
    "8UC3": _cvt(cv2.COLOR_BGR2RGB),
    "rgba8": _cvt(cv2.COLOR_RGBA2RGB),
    "bgra8": _cvt(cv2.COLOR_BGRA2RGB),
    "mono8": _cvt(cv2.COLOR_GRAY2RGB),
    "8UC1": _cvt(cv2.COLOR_GRAY2RGB),
    **{f"bayer_{p}8": _cvt(code) for p, code in _BAYER_TO_RGB.items()},
    "uyvy": _cvt(cv2.COLOR_YUV2RGB_UYVY),
    "yuv422": _cvt(cv2.COLOR_YUV2RGB_UYVY),
    "yuyv": _cvt(cv2.COLOR_YUV2RGB_YUY2),
    "yuv422_yuy2": _cvt(cv2.COLOR_YUV2RGB_YUY2),
    "nv12": _cvt(cv2.COLOR_YUV2RGB_NV12),
    "nv21": _cvt(cv2.COLOR_YUV2RGB_NV21),
}

_FROM_RGB8: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "rgb8": np.copy,
    "bgr8": _cvt(cv2.COLOR_RGB2BGR),
    "8UC3": _cvt(cv2.COLOR_RGB2BGR),
    "rgba8": _cvt(cv2.COLOR_RGB2RGBA),
    "bgra8": _cvt(cv2.COLOR_RGB2BGRA),
    "mono8": _cvt(cv2.COLOR_RGB2GRAY),
    "8UC1": _cvt(cv2.COLOR_RGB2GRAY),
    **{f"bayer_{p}8": _mosaic(p) for p in BAYER_PATTERNS},
    "uyvy": _cvt(cv2.COLOR_RGB2YUV_UYVY),
    "yuv422": _cvt(cv2.COLOR_RGB2YUV_UYVY),
    "yuyv": _cvt(cv2.COLOR_RGB2YUV_YUY2),
    "yuv422_yuy2": _cvt(cv2.COLOR_RGB2YUV_YUY2),
    "nv12": _semi_planar(v_first=False),
    "nv21": _semi_planar(v_first=True),
}

# Each 16-bit encoding goes through its 8-bit sibling.
_EIGHT_BIT_SIBLING = {
    "rgb16": "rgb8",
    "bgr16": "bgr8",
    "rgba16": "rgba8",
    "bgra16": "bgra8",
    "mono16": "mono8",
    "16UC1": "mono8",
    **{f"bayer_{p}16": f"bayer_{p}8" for p in BAYER_PATTERNS},
}
_TO_RGB8.update({wide: _on_high_byte(_TO_RGB8[narrow]) for wide, narrow in _EIGHT_BIT_SIBLING.items()})
_FROM_RGB8.update({wide: _widened(_FROM_RGB8[narrow]) for wide, narrow in _EIGHT_BIT_SIBLING.items()})

CONVERTIBLE_ENCODINGS: tuple[str, ...] = tuple(_TO_RGB8)
"""Encodings that :func:`image_to_rgb8` converts to RGB and :func:`rgb8_to` produces."""


def image_to_rgb8(msg: Any) -> np.ndarray:
    """Return an Image message as a C-contiguous H x W x 3 uint8 RGB array for the network.

    bgr/rgba/bgra are reordered, mono is repeated in three channels, 16-bit data keeps its high
    byte (``>> 8``), Bayer mosaics are demosaicked bilinearly, yuv422/uyvy, yuyv/yuv422_yuy2
    and nv12/nv21 are converted with OpenCV's BT.601 limited-range matrices, and 8UC3 / 8UC1 are
    read as bgr8 / mono8 as cv_bridge does. For unpadded rgb8 the result is a read-only view of
    ``msg.data`` (no copy); copy it before writing to it. Every other result is a new array.
    """
    encoding = str(msg.encoding)
    convert = _TO_RGB8.get(encoding)
    if convert is None:
        known = "" if encoding in SUPPORTED_ENCODINGS else "unknown "
        raise CodecError(
            f"cannot convert {known}encoding {encoding!r} to rgb8; convertible encodings:"
            f" {', '.join(CONVERTIBLE_ENCODINGS)}"
        )
    return convert(image_to_array(msg))


def rgb8_to(encoding: str, rgb: np.ndarray) -> np.ndarray:
    """Convert an H x W x 3 uint8 RGB array to the pixel array of ``encoding``.

    The inverse of :func:`image_to_rgb8`, deterministic, for simulated cameras and tests: the
    result can be passed to :func:`~bialign_ros.codec.fill_image` with the same encoding.
    8-bit values ``v`` become ``v * 257`` in the 16-bit encodings; mono is OpenCV's BT.601 luma;
    Bayer encodings keep, at each pixel, the channel of the filter colour there.
    """
    convert = _FROM_RGB8.get(encoding)
    if convert is None:
        raise CodecError(
            f"cannot produce encoding {encoding!r} from rgb8; supported: {', '.join(CONVERTIBLE_ENCODINGS)}"
        )
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise CodecError(f"expected an H x W x 3 uint8 RGB array, got shape {rgb.shape} of {rgb.dtype}")
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise CodecError(f"image has zero size: width {rgb.shape[1]}, height {rgb.shape[0]}")
    check_even_size(encoding, rgb.shape[0], rgb.shape[1])
    return convert(np.ascontiguousarray(rgb))
