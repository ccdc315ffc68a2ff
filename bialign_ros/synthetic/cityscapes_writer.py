"""Write synthetic frames in the Cityscapes folder layout and file naming.

``root/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png`` and, beside it in
``root/gtFine/<split>/<city>/``, the ``_gtFine_labelIds``, ``_gtFine_labelTrainIds``,
``_gtFine_instanceIds`` and ``_gtFine_color`` images, so Cityscapes loaders and the official
evaluation scripts read them unchanged.
"""

from __future__ import annotations

import operator
import re
import zlib
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from bialign_ros.synthetic.frame import SceneFrame
from bialign_ros.synthetic.sequence import render_scene, render_sequence

DEFAULT_CITIES = {"train": "synthtown", "val": "synthville", "test": "synthburg"}
FALLBACK_CITY = "synthcity"
SEQUENCE_LENGTH = 30
"""Frames per sequence in sequence mode (the length of a Cityscapes video snippet)."""
ANNOTATED_FRAME = 19
"""Frame number of single images: Cityscapes annotates the 20th frame of each snippet."""

_SPLIT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]*$")
_CITY_RE = re.compile(r"^[a-z][a-z0-9]*$")


def image_seed(seed: int, split: str, index: int) -> int:
    """Seed of image (or sequence) ``index`` of ``split``: different splits never share scenes."""
    state = np.random.SeedSequence([seed, zlib.crc32(split.encode()), index]).generate_state(2, np.uint32)
    return int(state[0]) << 32 | int(state[1])


def frame_stem(city: str, sequence: int, frame: int) -> str:
    """Cityscapes file stem ``<city>_<seq:06d>_<frame:06d>``."""
    return f"{city}_{sequence:06d}_{frame:06d}"


def _write_png(path: Path, array: np.ndarray) -> None:
    if array.ndim == 3:
        code = cv2.COLOR_RGB2BGR if array.shape[2] == 3 else cv2.COLOR_RGBA2BGRA
        array = cv2.cvtColor(array, code)
    if not cv2.imwrite(str(path), array):
        raise OSError(f"could not write {path}")


def write_frame(root: Path, split: str, city: str, stem: str, frame: SceneFrame) -> Path:
    """Write one frame's image and its four ground-truth images; return the image path."""
    image_dir = root / "leftImg8bit" / split / city
    gt_dir = root / "gtFine" / split / city
    image_dir.mkdir(parents=True, exist_ok=True)
    gt_dir.mkdir(parents=True, exist_ok=True)
    image_path = image_dir / f"{stem}_leftImg8bit.png"
    _write_png(image_path, frame.image)
    _write_png(gt_dir / f"{stem}_gtFine_labelIds.png", frame.label_ids)
    _write_png(gt_dir / f"{stem}_gtFine_labelTrainIds.png", frame.train_ids)
    _write_png(gt_dir / f"{stem}_gtFine_instanceIds.png", frame.instance_ids)
    # Cityscapes ships its colour annotations as RGBA.
    color = frame.color
    alpha = np.full(color.shape[:2] + (1,), 255, dtype=np.uint8)
    _write_png(gt_dir / f"{stem}_gtFine_color.png", np.concatenate([color, alpha], axis=2))
    return image_path


def write_cityscapes(
    root: str | Path,
    split: str = "train",
    num_images: int = 10,
    height: int = 512,
    width: int = 1024,
    seed: int = 0,
    city: str | None = None,
    sequence: bool = False,
    progress: bool = True,
) -> list[Path]:
    """Render ``num_images`` frames into a Cityscapes-layout dataset under ``root``.

    Single images are independent scenes named ``<city>_<index:06d>_000019``; with
    ``sequence=True`` consecutive frames of driving sequences are written, 30 per sequence,
    named ``<city>_<sequence:06d>_<frame:06d>``. Scenes depend on ``seed``, ``split`` and the
    index, so train and val never share a scene. Returns the written ``leftImg8bit`` paths.
    """
    num_images = operator.index(num_images)
    if num_images < 0:
        raise ValueError(f"num_images must be non-negative, got {num_images}")
    if not _SPLIT_RE.match(split):
        raise ValueError(
            f"split must be a folder name of letters, digits and '_' (like 'train'), got {split!r}"
        )
    city = city if city is not None else DEFAULT_CITIES.get(split, FALLBACK_CITY)
    if not _CITY_RE.match(city):
        raise ValueError(
            "city must be lowercase letters and digits (no '_', which separates the fields of "
            f"Cityscapes file names), got {city!r}"
        )
    root = Path(root)
    paths: list[Path] = []
    with tqdm(total=num_images, desc=f"synthesising {split}", unit="img", disable=not progress) as bar:
        if not sequence:
            for index in range(num_images):
                frame = render_scene(image_seed(seed, split, index), height, width)
                paths.append(write_frame(root, split, city, frame_stem(city, index, ANNOTATED_FRAME), frame))
                bar.update()
            return paths
        for seq in range((num_images + SEQUENCE_LENGTH - 1) // SEQUENCE_LENGTH):
            count = min(SEQUENCE_LENGTH, num_images - seq * SEQUENCE_LENGTH)
            frames = render_sequence(image_seed(seed, split, seq), count, height, width)
            for index, frame in enumerate(frames):
                paths.append(write_frame(root, split, city, frame_stem(city, seq, index), frame))
                bar.update()
    return paths
