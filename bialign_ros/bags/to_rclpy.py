"""The rclpy side of a bag's messages: the message class of a type name, and rclpy's decoding.

A bag holds every message as the CDR bytes rclpy itself sends, so a player publishes them
unchanged (an rclpy publisher takes serialised bytes) and rclpy's own
:func:`rclpy.serialization.deserialize_message` gives a message object where one is needed.
Bags written by :mod:`bialign_ros.bags.io` use rosbags' Jazzy definitions, whose CDR rclpy reads
as its own Image, CompressedImage, CameraInfo and Clock (checked in the tests).
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import Any

from rclpy.serialization import deserialize_message


@cache
def rclpy_class(msgtype: str) -> type | None:
    """The Python message class of ``pkg/msg/Name``, or None when its package is not installed."""
    parts = msgtype.split("/")
    if len(parts) == 2:  # pkg/Name, as rosidl writes nested types
        parts = [parts[0], "msg", parts[1]]
    if len(parts) != 3:
        return None
    try:
        module = importlib.import_module(f"{parts[0]}.{parts[1]}")
    except ImportError:
        return None
    return getattr(module, parts[2], None)


def to_rclpy(data: bytes, cls: type) -> Any:
    """The ``cls`` message held in the CDR bytes of a bag message; ValueError when they hold none."""
    try:
        return deserialize_message(data, cls)
    except RuntimeError as exc:  # rclpy's RMWError: the bytes do not follow cls's definition
        raise ValueError(f"not a serialised {cls.__module__}.{cls.__name__}: {exc}") from None
