"""Turn a folder of frames (and optional label images) into a rosbag2 bag.

Cityscapes layouts are recognised: ``leftImg8bit[_sequence]/<split>/<city>/*_leftImg8bit.png``
frames with ``gtFine/<split>/<city>/*_gtFine_labelIds.png`` (label IDs, mapped to train IDs with
the official ``cityscapesscripts`` table) or ``*_gtFine_labelTrainIds.png``. Any other folder of
image files (:data:`bialign_ros.image_files.IMAGE_SUFFIXES`) takes label images of the same
relative path and stem holding train IDs, or the label values of a ``classes.yaml``
(:mod:`bialign_ros.class_table`) when one is given. Frames are stamped at ``1 / rate`` intervals and
logged at their stamps; ground truth is a mono8 image with the frame's header.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from bialign_ros.bags.io import BagWriter
from bialign_ros.bags.messages import COMPRESSED_IMAGE, IMAGE, compressed_message, image_message
from bialign_ros.class_table import ClassTable, cityscapes_table
from bialign_ros.image_files import IMAGE_SUFFIXES, is_image_file, read_rgb
from bialign_ros.node_interface import compressed_topic

CITYSCAPES_IMAGE = "_leftImg8bit.png"
CITYSCAPES_LABEL_IDS = "_gtFine_labelIds.png"
CITYSCAPES_TRAIN_IDS = "_gtFine_labelTrainIds.png"
IMAGE_FORMATS = ("raw", "jpeg", "png")
DEFAULT_START_NS = 1_700_000_000_000_000_000
"""Stamp of the first frame (2023-11-14T22:13:20Z): fixed, so the same folder gives the same bag."""
DEFAULT_RATE = 17.0
"""Frame rate of the Cityscapes video sequences (Hz)."""


@dataclass(frozen=True)
class SourceFrame:
    """One frame file and its label file, if any."""

    image: Path
    label: Path | None = None
    classes: ClassTable | None = None
    """The class table whose label values the label file holds; None when it holds train IDs."""


@dataclass(frozen=True)
class BagSummary:
    """What :func:`write_frames` wrote."""

    path: Path
    image_topic: str
    gt_topic: str | None
    frames: int
    ground_truth: int
    stamps: tuple[int, ...]


def find_frames(images_dir: str | Path, labels_dir: str | Path | None = None,
                classes: ClassTable | None = None) -> list[SourceFrame]:
    """The frames under ``images_dir`` (recursively, sorted by path) with their label files.

    Frames without a label file are kept (they get no ground truth). ``classes`` maps the label
    values of a plain folder's label files (default: they hold train IDs). Raises ValueError
    when the folder holds no frames.
    """
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise ValueError(f"image folder {images_dir} does not exist")
    if labels_dir is not None and not Path(labels_dir).is_dir():
        raise ValueError(f"label folder {labels_dir} does not exist")
    images = sorted(images_dir.rglob(f"*{CITYSCAPES_IMAGE}"))
    cityscapes = bool(images)
    if not cityscapes:
        images = sorted(p for p in images_dir.rglob("*") if is_image_file(p))
    if not images:
        raise ValueError(f"no frames in {images_dir}: expected *{CITYSCAPES_IMAGE} or "
                         f"{'/'.join(IMAGE_SUFFIXES)} files")
    if cityscapes and classes is not None:
        raise ValueError(f"{images_dir} is a Cityscapes folder: its labels are mapped by the Cityscapes "
                         "table, not by a classes.yaml")
    return [_with_label(image, images_dir, labels_dir, cityscapes, classes) for image in images]


def _with_label(image: Path, images_dir: Path, labels_dir: str | Path | None,
                cityscapes: bool, classes: ClassTable | None) -> SourceFrame:
    if labels_dir is None:
        return SourceFrame(image)
    rel = image.relative_to(images_dir)
    if cityscapes:
        stem = rel.name[: -len(CITYSCAPES_IMAGE)]
        for suffix, label_ids in ((CITYSCAPES_LABEL_IDS, True), (CITYSCAPES_TRAIN_IDS, False)):
            label = Path(labels_dir) / rel.parent / f"{stem}{suffix}"
            if label.is_file():
                return SourceFrame(image, label, cityscapes_table() if label_ids else None)
        return SourceFrame(image)
    label = Path(labels_dir) / rel.with_suffix(".png")
    return SourceFrame(image, label, classes) if label.is_file() else SourceFrame(image)


def read_frame(frame: SourceFrame) -> tuple[np.ndarray, np.ndarray | None]:
    """The frame as H x W x 3 uint8 RGB and its H x W uint8 train IDs (or None)."""
    rgb = read_rgb(frame.image)
    if frame.label is None:
        return rgb, None
    ids = cv2.imread(str(frame.label), cv2.IMREAD_UNCHANGED)
    if ids is None or ids.ndim != 2 or ids.dtype != np.uint8:
        raise ValueError(f"cannot read {frame.label} as a single-channel 8-bit label image")
    if ids.shape != rgb.shape[:2]:
        raise ValueError(f"label image {frame.label} is {ids.shape[1]}x{ids.shape[0]} but frame "
                         f"{frame.image} is {rgb.shape[1]}x{rgb.shape[0]}")
    if frame.classes is None:
        return rgb, ids
    frame.classes.check_label_map(ids, frame.label)
    return rgb, frame.classes.lut[ids]


def frame_stamp(index: int, rate: float, start_ns: int = DEFAULT_START_NS) -> int:
    """Stamp (ns) of frame ``index`` at ``rate`` Hz from ``start_ns``."""
    return start_ns + round(index * 1e9 / rate)


def write_frames(
    out: str | Path,
    frames: Iterable[tuple[np.ndarray, np.ndarray | None]],
    rate: float = DEFAULT_RATE,
    topic: str = "/camera/image",
    gt_topic: str = "/camera/labels",
    storage: str = "mcap",
    image_format: str = "raw",
    start_ns: int = DEFAULT_START_NS,
    frame_id: str = "camera",
) -> BagSummary:
    """Write (RGB image, train IDs or None) frames as a bag at ``out``.

    ``image_format`` raw writes ``sensor_msgs/Image`` rgb8 on ``topic``; jpeg or png write
    ``sensor_msgs/CompressedImage`` on ``topic/compressed`` (image_transport's name). Ground
    truth goes to ``gt_topic`` as mono8 train IDs with the frame's header. Returns what was written.
    """
    if image_format not in IMAGE_FORMATS:
        raise ValueError(f"image format must be one of {', '.join(IMAGE_FORMATS)}, got {image_format!r}")
    if not rate > 0:
        raise ValueError(f"frame rate must be positive, got {rate}")
    image_topic = topic if image_format == "raw" else compressed_topic(topic)
    stamps: list[int] = []
    ground_truth = 0
    with BagWriter(out, storage) as bag:
        bag.add_topic(image_topic, IMAGE if image_format == "raw" else COMPRESSED_IMAGE)
        for index, (rgb, train_ids) in enumerate(frames):
            stamp = frame_stamp(index, rate, start_ns)
            if image_format == "raw":
                msg = image_message(rgb, "rgb8", stamp, frame_id)
            else:
                msg = compressed_message(rgb, image_format, stamp, frame_id)
            bag.write(image_topic, stamp, msg)
            if train_ids is not None:
                if not ground_truth:
                    bag.add_topic(gt_topic, IMAGE)
                bag.write(gt_topic, stamp, image_message(train_ids, "mono8", stamp, frame_id))
                ground_truth += 1
            stamps.append(stamp)
    return BagSummary(Path(out), image_topic, gt_topic if ground_truth else None, len(stamps), ground_truth,
                      tuple(stamps))


def make_bag(
    images_dir: str | Path,
    out: str | Path,
    labels_dir: str | Path | None = None,
    classes: ClassTable | None = None,
    limit: int = 0,
    progress: bool = True,
    **options: object,
) -> BagSummary:
    """Write the frames of a folder (see the module doc) to a bag; ``options`` go to :func:`write_frames`.

    ``classes`` maps a plain folder's label values to train IDs; ``limit`` > 0 keeps only the first frames.
    """
    frames = find_frames(images_dir, labels_dir, classes)
    if limit > 0:
        frames = frames[:limit]

    def read_all() -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        for frame in tqdm(frames, desc="writing bag", unit="frame", disable=not progress):
            yield read_frame(frame)

    return write_frames(out, read_all(), **options)
