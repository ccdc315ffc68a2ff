"""Image files: which suffixes count as images, finding them, reading them as RGB, writing PNGs.

The one place that knows OpenCV stores pixels as BGR: everything else in the package works in RGB.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm")
"""File suffixes (lower case) read as images by every tool."""


def is_image_file(path: Path) -> bool:
    """True for an existing file whose suffix is one of :data:`IMAGE_SUFFIXES` (any case)."""
    return path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()


def find_images(directory: str | Path, recursive: bool = True) -> list[Path]:
    """The image files under ``directory`` (``recursive``: in every subfolder), sorted by path.

    Raises ValueError when the folder does not exist or holds no image.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"image folder not found: {directory}")
    paths = sorted(p for p in (directory.rglob("*") if recursive else directory.iterdir()) if is_image_file(p))
    if not paths:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) {'under' if recursive else 'in'} {directory}")
    return paths


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as H x W x 3 uint8 RGB (grey and alpha images are converted).

    Raises ValueError naming the file when it cannot be read.
    """
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"cannot read image {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def write_png(path: str | Path, image: np.ndarray) -> None:
    """Write an H x W (mono) or H x W x 3 (RGB) uint8 image as PNG; OSError when it cannot be written."""
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(str(path), image):
        raise OSError(f"cannot write {path}")
