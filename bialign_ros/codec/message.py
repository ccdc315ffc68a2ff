"""Any camera message to RGB: raw ``Image`` or ``CompressedImage``, told apart by their fields."""

from __future__ import annotations

from typing import Any

import numpy as np

from bialign_ros.codec.compressed import compressed_to_rgb8
from bialign_ros.codec.rgb import image_to_rgb8


def is_compressed(msg: Any) -> bool:
    """True for a ``sensor_msgs/CompressedImage`` (it has ``format`` and no ``encoding``)."""
    return hasattr(msg, "format") and not hasattr(msg, "encoding")


def message_to_rgb8(msg: Any) -> np.ndarray:
    """The H x W x 3 uint8 RGB pixels of an ``Image`` or ``CompressedImage`` (rclpy, rosbags or
    any object with their fields); :class:`CodecError` for a malformed message."""
    return compressed_to_rgb8(msg) if is_compressed(msg) else image_to_rgb8(msg)
