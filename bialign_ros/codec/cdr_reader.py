"""Camera messages read straight from their CDR bytes: what a raw subscription (``raw=True``) takes.

A typed rclpy subscription turns every sample into a Python message as it arrives: DDS's CDR is
deserialised into a C message and its pixels copied again into an ``array.array``, in the
executor's thread, also for the frames that a newer one replaces before the model could take them.
A raw subscription hands over the CDR bytes instead; these functions read the fields of
``sensor_msgs/Image`` and ``sensor_msgs/CompressedImage`` from them when (and if) a frame is used,
with the pixels a view of the bytes, not a copy. The results have the fields of the messages, so
every function of :mod:`bialign_ros.codec` takes them.

XCDR1 and XCDR2 plain encodings are read, little- or big-endian (these messages' fields align to at
most 4 bytes, where the two agree).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from bialign_ros.codec.errors import CodecError

_ENCAPSULATIONS = {b"\x00\x00": ">", b"\x00\x01": "<", b"\x00\x06": ">", b"\x00\x07": "<"}
"""Encapsulation identifier -> byte order: CDR_BE, CDR_LE, PLAIN_CDR2_BE, PLAIN_CDR2_LE."""
_HEADER_SIZE = 4


@dataclass(frozen=True)
class CdrTime:
    """``builtin_interfaces/Time``."""

    sec: int
    nanosec: int

    @property
    def nanoseconds(self) -> int:
        """The stamp in nanoseconds."""
        return self.sec * 1_000_000_000 + self.nanosec


@dataclass(frozen=True)
class CdrHeader:
    """``std_msgs/Header``."""

    stamp: CdrTime
    frame_id: str


@dataclass(frozen=True)
class CdrImage:
    """The fields of a ``sensor_msgs/Image``; ``data`` is a read-only view of the CDR bytes."""

    header: CdrHeader
    height: int
    width: int
    encoding: str
    is_bigendian: bool
    step: int
    data: np.ndarray


@dataclass(frozen=True)
class CdrCompressedImage:
    """The fields of a ``sensor_msgs/CompressedImage``; ``data`` is a read-only view of the CDR bytes."""

    header: CdrHeader
    format: str
    data: np.ndarray


class CdrReader:
    """Reads CDR fields in order; alignment counts from the end of the encapsulation header."""

    def __init__(self, data: bytes | bytearray | memoryview, what: str = "message") -> None:
        self._data = memoryview(data).cast("B")
        self._what = what
        if len(self._data) < _HEADER_SIZE:
            raise CodecError(f"{what} of {len(self._data)} bytes is too short for a CDR encapsulation header")
        kind = bytes(self._data[:2])
        if kind not in _ENCAPSULATIONS:
            raise CodecError(f"{what} has CDR encapsulation 0x{kind.hex()}, not one of plain XCDR1 or XCDR2 "
                             f"({', '.join('0x' + k.hex() for k in _ENCAPSULATIONS)})")
        self._order = _ENCAPSULATIONS[kind]
        self._pos = _HEADER_SIZE

    def _take(self, size: int, field: str) -> int:
        """Advance over ``size`` bytes of ``field``; return where they start."""
        start = self._pos
        if start + size > len(self._data):
            raise CodecError(f"{self._what} of {len(self._data)} bytes ends inside its field {field} "
                             f"({size} bytes from offset {start})")
        self._pos = start + size
        return start

    def _get(self, fmt: str, field: str) -> int:
        size = struct.calcsize(fmt)
        self._pos += -(self._pos - _HEADER_SIZE) % size
        return struct.unpack_from(self._order + fmt, self._data, self._take(size, field))[0]

    def u8(self, field: str) -> int:
        """An uint8 (or bool)."""
        return self._get("B", field)

    def u32(self, field: str) -> int:
        """An uint32."""
        return self._get("I", field)

    def i32(self, field: str) -> int:
        """An int32."""
        return self._get("i", field)

    def string(self, field: str) -> str:
        """A string: its length with the terminating NUL, its UTF-8 bytes, NUL."""
        size = self.u32(field)
        start = self._take(size, field)
        raw = bytes(self._data[start:start + max(size - 1, 0)])
        try:
            return raw.decode()
        except UnicodeDecodeError as err:
            raise CodecError(f"{self._what} field {field} is not UTF-8: {err}") from err

    def header(self) -> CdrHeader:
        """A ``std_msgs/Header``."""
        sec = self.i32("header.stamp.sec")
        nanosec = self.u32("header.stamp.nanosec")
        return CdrHeader(CdrTime(sec, nanosec), self.string("header.frame_id"))

    def byte_sequence(self, field: str) -> np.ndarray:
        """A ``uint8[]``, as a read-only view of the bytes."""
        size = self.u32(field)
        return np.frombuffer(self._data, np.uint8, count=size, offset=self._take(size, field))


def deserialize_image(data: bytes | bytearray | memoryview) -> CdrImage:
    """The fields of the ``sensor_msgs/Image`` whose CDR is ``data``; :class:`CodecError` when truncated."""
    cdr = CdrReader(data, "Image message")
    header = cdr.header()
    height, width = cdr.u32("height"), cdr.u32("width")
    encoding = cdr.string("encoding")
    is_bigendian = bool(cdr.u8("is_bigendian"))
    step = cdr.u32("step")
    return CdrImage(header, height, width, encoding, is_bigendian, step, cdr.byte_sequence("data"))


def deserialize_compressed_image(data: bytes | bytearray | memoryview) -> CdrCompressedImage:
    """The fields of the ``sensor_msgs/CompressedImage`` whose CDR is ``data``; :class:`CodecError`
    when truncated."""
    cdr = CdrReader(data, "CompressedImage message")
    header = cdr.header()
    return CdrCompressedImage(header, cdr.string("format"), cdr.byte_sequence("data"))


def header_stamp_ns(data: bytes | bytearray | memoryview) -> int:
    """The header stamp, in nanoseconds, of any message whose CDR ``data`` starts with a ``std_msgs/Header``."""
    cdr = CdrReader(data)
    sec = cdr.i32("header.stamp.sec")
    return CdrTime(sec, cdr.u32("header.stamp.nanosec")).nanoseconds
