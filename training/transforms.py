"""Training augmentation and input normalisation (NumPy/OpenCV, RGB uint8 images).

The recipe of the authors: random scale in [0.5, 2.0] (bicubic image, nearest labels), a crop
padded with black / ignore where the scaled image is smaller, a crop that contains the
class-uniform centroid when one is given, horizontal flip, colour jitter (brightness, contrast,
saturation, hue in random order) and a Gaussian blur with sigma in [0.15, 1.3]. All randomness
comes from the ``numpy.random.Generator`` passed in, so a sample is a pure function of its seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from bialign_ros.classes import IGNORE_INDEX


@dataclass(frozen=True)
class TrainAugmentation:
    """Geometric and photometric augmentation producing ``crop_size`` square crops.

    Its fields are also the augmentation keys of the training config's ``data`` section
    (:class:`training.config.DataConfig` extends this class), so a config's data section is
    the augmentation it describes. Defaults are the authors' Cityscapes recipe.
    """

    crop_size: int = 1024
    scale_min: float = 0.5
    scale_max: float = 2.0
    hflip: bool = True
    color_jitter: float = 0.25
    blur_sigma: tuple[float, float] = (0.15, 1.3)
    blur_prob: float = 1.0

    def __post_init__(self) -> None:
        """Raise ValueError naming the first field whose value is out of range."""
        checks = (
            (self.crop_size > 0, f"crop_size must be positive, got {self.crop_size}"),
            (0 < self.scale_min <= self.scale_max,
             f"scale_min/scale_max must satisfy 0 < min <= max, got {self.scale_min}, {self.scale_max}"),
            (0 <= self.color_jitter <= 0.5, f"color_jitter must be in [0, 0.5], got {self.color_jitter}"),
            (len(self.blur_sigma) == 2 and 0 < self.blur_sigma[0] <= self.blur_sigma[1],
             f"blur_sigma must be [min, max] with 0 < min <= max, got {list(self.blur_sigma)}"),
            (0 <= self.blur_prob <= 1, f"blur_prob must be in [0, 1], got {self.blur_prob}"),
        )
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    def __call__(
        self,
        image: np.ndarray,
        labels: np.ndarray,
        rng: np.random.Generator,
        centroid: tuple[int, int] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Augment one H x W x 3 uint8 RGB image and its H x W uint8 train-ID map.

        ``centroid`` is an ``(x, y)`` pixel of the unscaled image that the crop must contain.
        """
        scale = float(rng.uniform(self.scale_min, self.scale_max))
        image, labels = rescale(image, labels, scale)
        if centroid is not None:
            centroid = (int(centroid[0] * scale), int(centroid[1] * scale))
        image, labels = random_crop(image, labels, self.crop_size, rng, centroid)
        if self.hflip and rng.random() < 0.5:
            image, labels = np.ascontiguousarray(image[:, ::-1]), np.ascontiguousarray(labels[:, ::-1])
        if self.color_jitter > 0:
            image = color_jitter(image, self.color_jitter, rng)
        if rng.random() < self.blur_prob:
            image = gaussian_blur(image, float(rng.uniform(*self.blur_sigma)))
        return image, labels


def rescale(image: np.ndarray, labels: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Resize by ``scale``: bicubic for the image, nearest neighbour for the labels."""
    h, w = labels.shape
    size = (max(1, int(w * scale)), max(1, int(h * scale)))
    return (
        cv2.resize(image, size, interpolation=cv2.INTER_CUBIC),
        cv2.resize(labels, size, interpolation=cv2.INTER_NEAREST),
    )


def random_crop(
    image: np.ndarray,
    labels: np.ndarray,
    size: int,
    rng: np.random.Generator,
    centroid: tuple[int, int] | None = None,
    ignore_index: int = IGNORE_INDEX,
) -> tuple[np.ndarray, np.ndarray]:
    """Crop ``size x size``; pad (black image, ignore labels) where the input is smaller.

    With ``centroid`` (x, y) the crop window contains that pixel.
    """
    h, w = labels.shape
    pad_h, pad_w = max(0, size - h), max(0, size - w)
    if pad_h or pad_w:
        top, left = pad_h // 2, pad_w // 2
        image = cv2.copyMakeBorder(image, top, pad_h - top, left, pad_w - left, cv2.BORDER_CONSTANT, value=0)
        labels = cv2.copyMakeBorder(
            labels, top, pad_h - top, left, pad_w - left, cv2.BORDER_CONSTANT, value=ignore_index
        )
        if centroid is not None:
            centroid = (centroid[0] + left, centroid[1] + top)
        h, w = labels.shape
    if centroid is None:
        x0 = int(rng.integers(0, w - size + 1))
        y0 = int(rng.integers(0, h - size + 1))
    else:
        cx, cy = centroid
        x0 = int(np.clip(rng.integers(cx - size + 1, cx + 1), 0, w - size))
        y0 = int(np.clip(rng.integers(cy - size + 1, cy + 1), 0, h - size))
    window = (slice(y0, y0 + size), slice(x0, x0 + size))
    return np.ascontiguousarray(image[window]), np.ascontiguousarray(labels[window])


def color_jitter(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Jitter brightness, contrast and saturation by factors in ``[1 - s, 1 + s]`` and hue by
    ``[-s, s]`` of a full turn, applied in a random order."""
    ops = [
        (_brightness, rng.uniform(max(0.0, 1 - strength), 1 + strength)),
        (_contrast, rng.uniform(max(0.0, 1 - strength), 1 + strength)),
        (_saturation, rng.uniform(max(0.0, 1 - strength), 1 + strength)),
        (_hue, rng.uniform(-strength, strength)),
    ]
    out = image
    for i in rng.permutation(len(ops)):
        fn, factor = ops[i]
        out = fn(out, float(factor))
    return out


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur with standard deviation ``sigma`` pixels (kernel of +-3 sigma)."""
    return cv2.GaussianBlur(image, (0, 0), sigmaX=sigma, sigmaY=sigma)


def normalize(image: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """H x W x 3 uint8 image -> 3 x H x W float tensor, ``(x / 255 - mean) / std`` per channel."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an H x W x 3 uint8 image, got {image.dtype} {image.shape}")
    x = image.astype(np.float32) / 255.0
    x = (x - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))


def _blend(a: np.ndarray, b: np.ndarray | float, factor: float) -> np.ndarray:
    out = a.astype(np.float32) * factor + np.asarray(b, dtype=np.float32) * (1.0 - factor)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def _brightness(image: np.ndarray, factor: float) -> np.ndarray:
    return _blend(image, 0.0, factor)


def _contrast(image: np.ndarray, factor: float) -> np.ndarray:
    return _blend(image, float(_gray(image).mean()), factor)


def _saturation(image: np.ndarray, factor: float) -> np.ndarray:
    return _blend(image, _gray(image)[..., None], factor)


def _hue(image: np.ndarray, shift: float) -> np.ndarray:
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV_FULL)  # hue in 0..255 for a full turn
    hsv[..., 0] = (hsv[..., 0].astype(np.int32) + int(round(shift * 255))) % 256
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB_FULL)
