"""Pixel layouts of the ``sensor_msgs/Image`` encodings (names as in ROS ``image_encodings``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bialign_ros.codec.errors import CodecError


@dataclass(frozen=True)
class PixelLayout:
    """How one encoding stores its pixels in ``Image.data``.

    ``chroma_rows`` is true for the 4:2:0 semi-planar encodings (nv12, nv21): a full-resolution
    Y plane of ``height`` rows is followed by an interleaved chroma plane of ``height / 2`` rows,
    both ``step`` bytes apart, so the data holds ``height * 3 / 2`` rows of one byte per pixel.
    """

    dtype: np.dtype
    channels: int
    chroma_rows: bool = False

    @property
    def pixel_bytes(self) -> int:
        """Bytes per pixel of one row."""
        return self.dtype.itemsize * self.channels

    def rows(self, height: int) -> int:
        """Number of ``step``-byte rows that an image of ``height`` pixels occupies."""
        return height * 3 // 2 if self.chroma_rows else height

    def array_shape(self, height: int, width: int) -> tuple[int, ...]:
        """Shape of the array that holds an image of this layout."""
        rows = self.rows(height)
        return (rows, width) if self.channels == 1 else (rows, width, self.channels)


_U8, _U16 = np.dtype(np.uint8), np.dtype(np.uint16)
BAYER_PATTERNS = ("rggb", "bggr", "gbrg", "grbg")
YUV422_UYVY = ("uyvy", "yuv422")
YUV422_YUYV = ("yuyv", "yuv422_yuy2")
YUV420 = ("nv12", "nv21")

_LAYOUTS: dict[str, PixelLayout] = {
    "rgb8": PixelLayout(_U8, 3),
    "bgr8": PixelLayout(_U8, 3),
    "rgba8": PixelLayout(_U8, 4),
    "bgra8": PixelLayout(_U8, 4),
    "mono8": PixelLayout(_U8, 1),
    "rgb16": PixelLayout(_U16, 3),
    "bgr16": PixelLayout(_U16, 3),
    "rgba16": PixelLayout(_U16, 4),
    "bgra16": PixelLayout(_U16, 4),
    "mono16": PixelLayout(_U16, 1),
    **{f"bayer_{p}8": PixelLayout(_U8, 1) for p in BAYER_PATTERNS},
    **{f"bayer_{p}16": PixelLayout(_U16, 1) for p in BAYER_PATTERNS},
    **{name: PixelLayout(_U8, 2) for name in YUV422_UYVY + YUV422_YUYV},
    **{name: PixelLayout(_U8, 1, chroma_rows=True) for name in YUV420},
    # OpenCV matrix types, e.g. 16UC1 for depth in millimetres, 32FC1 for depth in metres.
    **{
        f"{bits}{kind}C{n}": PixelLayout(np.dtype(f"{dtype}{bits // 8}"), n)
        for bits, kind, dtype in (
            (8, "U", "u"),
            (8, "S", "i"),
            (16, "U", "u"),
            (16, "S", "i"),
            (32, "S", "i"),
            (32, "F", "f"),
            (64, "F", "f"),
        )
        for n in range(1, 5)
    },
}

SUPPORTED_ENCODINGS: tuple[str, ...] = tuple(_LAYOUTS)
"""Every encoding that :func:`~bialign_ros.codec.image_to_array` reads and
:func:`~bialign_ros.codec.fill_image` writes."""


def pixel_layout(encoding: str) -> PixelLayout:
    """Return the layout of ``encoding``; raise :class:`CodecError` listing the known ones."""
    try:
        return _LAYOUTS[encoding]
    except KeyError:
        raise CodecError(f"unknown image encoding {encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}") from None


def check_even_size(encoding: str, height: int, width: int) -> None:
    """Raise :class:`CodecError` when chroma subsampling of ``encoding`` needs an even size."""
    if encoding in YUV422_UYVY + YUV422_YUYV + YUV420 and width % 2:
        raise CodecError(f"encoding {encoding!r} needs an even width, got {width}")
    if encoding in YUV420 and height % 2:
        raise CodecError(f"encoding {encoding!r} needs an even height, got {height}")
