"""``sensor_msgs/CompressedImage`` (jpeg, png) <-> H x W x 3 uint8 RGB arrays."""

from __future__ import annotations

import re
from typing import Any

import cv2
import numpy as np

from bialign_ros.codec.errors import CodecError
from bialign_ros.codec.raw import message_bytes, store_bytes

COMPRESSED_FORMATS: tuple[str, ...] = ("jpeg", "png")
"""Compression formats read by :func:`compressed_to_rgb8` and written by :func:`encode_compressed`."""

_FORMAT_ALIASES = {"jpeg": "jpeg", "jpg": "jpeg", "png": "png"}
_JPEG_END = b"\xff\xd9"


def compressed_format(format_field: str) -> str:
    """Return ``"jpeg"`` or ``"png"`` for a ``CompressedImage.format`` string.

    Accepts the bare names and image_transport's ``"<encoding>; <format> compressed <encoding>"``
    form. compressedDepth (a depth header before the PNG) and other codecs raise
    :class:`CodecError`.
    """
    tokens = re.split(r"[\s;]+", str(format_field).strip().lower())
    if "compresseddepth" in tokens:
        raise CodecError(
            f"compressed format {format_field!r} (compressedDepth) is not supported;"
            f" supported: {', '.join(COMPRESSED_FORMATS)}"
        )
    found = {_FORMAT_ALIASES[t] for t in tokens if t in _FORMAT_ALIASES}
    if len(found) != 1:
        raise CodecError(f"unsupported compressed format {format_field!r}; supported: {', '.join(COMPRESSED_FORMATS)}")
    return found.pop()


def compressed_to_rgb8(msg: Any) -> np.ndarray:
    """Decode a CompressedImage message into a new H x W x 3 uint8 RGB array.

    Grey images are repeated in three channels; 16-bit PNGs keep their high byte; EXIF
    orientation is ignored. Empty, truncated or undecodable data raises :class:`CodecError`.
    """
    codec = compressed_format(msg.format)
    data = message_bytes(msg.data)
    if data.size == 0:
        raise CodecError(f"compressed {codec} image has no data")
    # libjpeg decodes a truncated stream with a warning and grey rows at the bottom.
    if codec == "jpeg" and not bytes(data[-64:]).rstrip(b"\0").endswith(_JPEG_END):
        raise CodecError(f"corrupt {codec} data: {data.size} bytes without the end-of-image marker (truncated?)")
    try:
        rgb = cv2.imdecode(data, cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION)
    except cv2.error as err:
        raise CodecError(f"corrupt {codec} data: {data.size} bytes could not be decoded ({err})") from err
    if rgb is None:
        raise CodecError(f"corrupt {codec} data: {data.size} bytes could not be decoded")
    return rgb


def encode_compressed(msg: Any, array_rgb: np.ndarray, fmt: str = "jpeg", quality: int = 90) -> Any:
    """Fill ``format`` and ``data`` of a CompressedImage message from an RGB or grey image.

    ``array_rgb`` is H x W x 3 uint8 RGB or H x W uint8 grey. ``fmt`` is ``"jpeg"`` (or
    ``"jpg"``) or ``"png"``; ``quality`` (0-100) applies to JPEG, PNG being lossless. The format
    string follows image_transport, e.g. ``"rgb8; jpeg compressed bgr8"``. The header is left
    to the caller. Returns ``msg``.
    """
    codec = _FORMAT_ALIASES.get(str(fmt).lower())
    if codec is None:
        raise CodecError(f"unsupported compressed format {fmt!r}; supported: {', '.join(COMPRESSED_FORMATS)}")
    if not 0 <= quality <= 100:
        raise CodecError(f"JPEG quality must be in 0..100, got {quality}")
    if array_rgb.dtype != np.uint8 or not (array_rgb.ndim == 2 or (array_rgb.ndim == 3 and array_rgb.shape[2] == 3)):
        raise CodecError(
            f"expected an H x W x 3 RGB or H x W grey uint8 array, got shape {array_rgb.shape} of {array_rgb.dtype}"
        )
    if array_rgb.ndim == 3:
        pixels, source, target = cv2.cvtColor(array_rgb, cv2.COLOR_RGB2BGR), "rgb8", "bgr8"
    else:
        pixels, source, target = array_rgb, "mono8", "mono8"
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if codec == "jpeg" else []
    ok, encoded = cv2.imencode(".jpg" if codec == "jpeg" else ".png", pixels, params)
    if not ok:
        raise CodecError(f"OpenCV could not encode a {array_rgb.shape} image as {codec}")
    msg.format = f"{source}; {codec} compressed {target}"
    store_bytes(msg, encoded)
    return msg
