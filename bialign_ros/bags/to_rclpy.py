"""Convert ``rosbags`` message objects into the ROS Python message classes rclpy publishes.

Works field by field from the rclpy class's own type description (``SLOT_TYPES``), so every
message type whose Python package is importable converts (Image, CompressedImage, CameraInfo,
std_msgs, geometry_msgs, ...). Numeric arrays are copied once, into the container the rclpy
class stores (``array.array`` for sequences, ``numpy`` for fixed-size arrays).
"""

from __future__ import annotations

import array
import importlib
from functools import cache
from typing import Any

import numpy as np
from rosidl_parser.definition import AbstractNestedType, NamespacedType


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


def _nested_class(slot: NamespacedType) -> type:
    msgtype = "/".join([*slot.namespaces, slot.name])
    cls = rclpy_class(msgtype)
    if cls is None:
        raise TypeError(f"no Python message class for nested type {msgtype}")
    return cls


def to_rclpy(msg: Any, cls: type) -> Any:
    """A new instance of the rclpy message class ``cls`` with the field values of ``msg``."""
    out = cls()
    for name, slot in zip(cls.get_fields_and_field_types(), cls.SLOT_TYPES):
        value = getattr(msg, name)
        if isinstance(slot, NamespacedType):
            value = to_rclpy(value, _nested_class(slot))
        elif isinstance(slot, AbstractNestedType):
            value = _convert_array(value, slot, getattr(out, name))
        elif isinstance(value, np.generic):
            value = value.item()
        setattr(out, name, value)
    return out


def _convert_array(value: Any, slot: AbstractNestedType, default: Any) -> Any:
    if isinstance(slot.value_type, NamespacedType):
        cls = _nested_class(slot.value_type)
        return [to_rclpy(v, cls) for v in value]
    if isinstance(default, np.ndarray):
        return np.asarray(value, dtype=default.dtype)
    if isinstance(default, array.array):
        out = array.array(default.typecode)
        values = np.ascontiguousarray(value, dtype=np.dtype(default.typecode)).reshape(-1)
        out.frombytes(values.view(np.uint8))
        return out
    return [v.item() if isinstance(v, np.generic) else v for v in value]
