"""Large messages serialised straight from NumPy: the CDR a publisher sends as it is.

Publishing an rclpy message copies its pixels three times before DDS gets them (into the message's
``data``, into the C message, into the CDR buffer); these functions write the CDR (little-endian,
XCDR1, as rmw_fastrtps serialises) of ``sensor_msgs/Image`` and ``sensor_msgs/PointCloud2`` into
one uint8 array with a single copy of the pixels, made by NumPy without holding the GIL, for
:func:`bialign_ros.raw_publish.publish_serialized`. The bytes are those of
``rclpy.serialization.serialize_message`` on the same message, padding aside (rmw leaves padding
bytes unset; here they are zero).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

from bialign_ros.codec.raw import image_fields

_ENCAPSULATION = b"\x00\x01\x00\x00"
"""CDR, little-endian."""


class CdrWriter:
    """Appends CDR fields; alignment counts from the end of the encapsulation header, as CDR does."""

    def __init__(self) -> None:
        self._parts: list[bytes | memoryview] = [_ENCAPSULATION]
        self._head = bytearray()
        self._size = 0

    def _put(self, fmt: str, *values: Any) -> None:
        size = struct.calcsize(fmt)
        self.align(size)
        self._head += struct.pack(fmt, *values)
        self._size += size

    def align(self, size: int) -> None:
        """Zero bytes up to the next multiple of ``size``."""
        pad = -self._size % size
        self._head += bytes(pad)
        self._size += pad

    def u8(self, value: int) -> None:
        """An uint8 (or bool)."""
        self._put("<B", value)

    def u32(self, value: int) -> None:
        """An uint32."""
        self._put("<I", value)

    def i32(self, value: int) -> None:
        """An int32."""
        self._put("<i", value)

    def string(self, value: str) -> None:
        """A string: its length with the terminating NUL, its UTF-8 bytes, NUL."""
        raw = value.encode()
        self.u32(len(raw) + 1)
        self._head += raw + b"\x00"
        self._size += len(raw) + 1

    def header(self, header: Any) -> None:
        """A ``std_msgs/Header`` (anything with ``stamp.sec``, ``stamp.nanosec`` and ``frame_id``)."""
        self.i32(header.stamp.sec)
        self.u32(header.stamp.nanosec)
        self.string(header.frame_id)

    def byte_sequence(self, data: np.ndarray) -> None:
        """A ``uint8[]``: its length, then the bytes of the C-contiguous ``data`` (not copied until :meth:`array`)."""
        flat = memoryview(np.ascontiguousarray(data)).cast("B")
        self.u32(flat.nbytes)
        self._parts += [bytes(self._head), flat]
        self._head = bytearray()
        self._size += flat.nbytes

    def array(self) -> np.ndarray:
        """Everything written, as one uint8 array (the one copy of the large sequences, without the GIL)."""
        parts = [*self._parts, bytes(self._head)]
        out = np.empty(sum(memoryview(p).nbytes for p in parts), np.uint8)
        at = 0
        for part in parts:
            view = np.frombuffer(part, np.uint8)
            out[at:at + view.size] = view
            at += view.size
        return out


def serialize_image(header: Any, array: np.ndarray, encoding: str) -> np.ndarray:
    """The CDR of the ``sensor_msgs/Image`` that :func:`~bialign_ros.codec.raw.fill_image` makes of
    ``array`` and ``encoding``, with ``header``. CodecError as ``fill_image`` for an array that does
    not fit the encoding."""
    height, width, step, pixels = image_fields(array, encoding)
    cdr = CdrWriter()
    cdr.header(header)
    cdr.u32(height)
    cdr.u32(width)
    cdr.string(encoding)
    cdr.u8(0)  # is_bigendian
    cdr.u32(step)
    cdr.byte_sequence(pixels)
    return cdr.array()


def serialize_point_cloud(header: Any, height: int, width: int, fields: Sequence[Any], is_bigendian: bool,
                          point_step: int, row_step: int, data: np.ndarray, is_dense: bool) -> np.ndarray:
    """The CDR of a ``sensor_msgs/PointCloud2``; ``fields`` are anything with the ``PointField``
    attributes (``name, offset, datatype, count``), ``data`` the packed points."""
    cdr = CdrWriter()
    cdr.header(header)
    cdr.u32(height)
    cdr.u32(width)
    cdr.u32(len(fields))
    for field in fields:
        cdr.string(field.name)
        cdr.u32(field.offset)
        cdr.u8(field.datatype)
        cdr.u32(field.count)
    cdr.u8(int(is_bigendian))
    cdr.u32(point_step)
    cdr.u32(row_step)
    cdr.byte_sequence(data)
    cdr.u8(int(is_dense))
    return cdr.array()
