"""Building and reading the image messages of bags, as ``rosbags`` message objects.

Pixels go through :mod:`bialign_ros.codec` (the same conversions as the node), so a bag frame
and a live frame decode identically.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
from rosbags.typesys import Stores, get_typestore
from rosbags.typesys.store import Typestore

from bialign_ros.codec import encode_compressed, fill_image, image_to_array

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
IMAGE_TYPES = (IMAGE, COMPRESSED_IMAGE)
LABEL_ENCODINGS = ("mono8", "8UC1")
"""Encodings accepted for ground-truth and predicted label images (one byte per pixel)."""

TYPESTORE_NAME = Stores.ROS2_JAZZY
"""Message definitions written into bags: Jazzy's, read unchanged by Jazzy and Kilted tools."""


@lru_cache(maxsize=1)
def typestore() -> Typestore:
    """The ``rosbags`` type store used to (de)serialise every message."""
    return get_typestore(TYPESTORE_NAME)


def stamp_to_ns(stamp: Any) -> int:
    """``builtin_interfaces/Time`` (``sec``, ``nanosec``) as integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def header(stamp_ns: int, frame_id: str) -> Any:
    """A ``std_msgs/Header`` with the given stamp (nanoseconds) and frame."""
    types = typestore().types
    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return types["std_msgs/msg/Header"](stamp=types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec),
                                         frame_id=frame_id)


def image_message(array: np.ndarray, encoding: str, stamp_ns: int, frame_id: str) -> Any:
    """A ``sensor_msgs/Image`` holding ``array`` in ``encoding`` (e.g. rgb8 or mono8)."""
    msg = typestore().types[IMAGE](header=header(stamp_ns, frame_id), height=0, width=0, encoding="",
                                   is_bigendian=0, step=0, data=np.empty(0, np.uint8))
    return fill_image(msg, array, encoding)


def compressed_message(rgb: np.ndarray, fmt: str, stamp_ns: int, frame_id: str, quality: int = 95) -> Any:
    """A ``sensor_msgs/CompressedImage`` of an RGB image (``fmt`` jpeg or png)."""
    msg = typestore().types[COMPRESSED_IMAGE](header=header(stamp_ns, frame_id), format="",
                                              data=np.empty(0, np.uint8))
    return encode_compressed(msg, rgb, fmt, quality)


def message_labels(msg: Any) -> np.ndarray:
    """The H x W uint8 label values of a mono8 (or 8UC1) Image message."""
    if msg.encoding not in LABEL_ENCODINGS:
        raise ValueError(f"label images must be {' or '.join(LABEL_ENCODINGS)} (one train ID per pixel), "
                         f"got encoding {msg.encoding!r}")
    return image_to_array(msg)
