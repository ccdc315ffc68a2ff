"""Cityscapes in its official folder layout, as training and evaluation datasets.

``ROOT/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png`` images and
``ROOT/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png`` label-ID maps. Label IDs
become the 19 train IDs through the table of the official ``cityscapesscripts`` package; every
other label (void classes, license plate, ...) becomes the ignore index 255.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from bialign_ros.classes import IGNORE_INDEX, IMAGENET_MEAN, IMAGENET_STD
from bialign_ros.image_files import read_rgb
from training.edges import edges_from_labels
from training.sampler import CentroidIndex, PlanItem, build_epoch_plan
from training.transforms import TrainAugmentation, normalize

IMAGE_DIR, IMAGE_SUFFIX = "leftImg8bit", "_leftImg8bit.png"
LABEL_DIR, LABEL_SUFFIX = "gtFine", "_gtFine_labelIds.png"


class DatasetError(ValueError):
    """The data set folder is missing, incomplete or not in the Cityscapes layout."""


@dataclass(frozen=True)
class Sample:
    """One annotated image: its files and its benchmark name ``<city>_<seq>_<frame>``."""

    image: Path
    label: Path
    name: str


def label_id_to_train_id_lut() -> np.ndarray:
    """256-entry uint8 table from Cityscapes label ID to train ID (255 = ignore), built from
    ``cityscapesscripts.helpers.labels``."""
    from cityscapesscripts.helpers.labels import labels

    lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    for label in labels:
        if 0 <= label.id < 256 and 0 <= label.trainId < IGNORE_INDEX:
            lut[label.id] = label.trainId
    return lut


def find_samples(root: str | Path, split: str) -> list[Sample]:
    """All image/label pairs of ``split``, sorted by name.

    Raises :class:`DatasetError` naming the expected paths when the split is missing, empty or
    an image has no label file.
    """
    root = Path(root)
    image_root = root / IMAGE_DIR / split
    label_root = root / LABEL_DIR / split
    if not image_root.is_dir() or not label_root.is_dir():
        raise DatasetError(
            f"no Cityscapes split {split!r} under {root}: expected {image_root}/<city>/*{IMAGE_SUFFIX} "
            f"and {label_root}/<city>/*{LABEL_SUFFIX}"
        )
    samples = []
    for image in sorted(image_root.glob(f"*/*{IMAGE_SUFFIX}")):
        name = image.name[: -len(IMAGE_SUFFIX)]
        label = label_root / image.parent.name / f"{name}{LABEL_SUFFIX}"
        if not label.is_file():
            raise DatasetError(f"image {image} has no label file {label}")
        samples.append(Sample(image=image, label=label, name=name))
    if not samples:
        raise DatasetError(f"no images matching {image_root}/<city>/*{IMAGE_SUFFIX}")
    return samples


def _read_rgb(path: Path) -> np.ndarray:
    try:
        return read_rgb(path)
    except ValueError as exc:
        raise DatasetError(str(exc)) from exc


def read_train_ids(path: str | Path, lut: np.ndarray) -> np.ndarray:
    """Read a label-ID PNG and map it to an H x W uint8 train-ID map through ``lut``."""
    ids = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if ids is None or ids.ndim != 2:
        raise DatasetError(f"cannot read single-channel label map {path}")
    return lut[ids]


def iter_train_ids(samples: Sequence[Sample], lut: np.ndarray) -> Iterator[np.ndarray]:
    """Train-ID maps of ``samples`` in order (for centroid indexing)."""
    for sample in samples:
        yield read_train_ids(sample.label, lut)


class CityscapesTrainSet(Dataset):
    """Augmented training crops with labels and edge ground truth.

    Every epoch has its own class-uniform plan of ``len(self)`` samples; key
    ``epoch * len(self) + i`` is sample ``i`` of ``epoch``. It depends only on ``(seed, epoch, i)``,
    whatever the number of loader workers or processes, so an interrupted run resumes with the
    very same samples. Items are dicts: ``image`` 3 x S x S float (normalised), ``labels`` S x S
    int64 train IDs, ``edges`` S x S float (0/1).
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        augmentation: TrainAugmentation,
        centroids: CentroidIndex,
        num_classes: int,
        class_uniform_pct: float = 0.5,
        edge_width: int = 2,
        seed: int = 0,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        self.samples = list(samples)
        self.augmentation = augmentation
        self.centroids = centroids
        self.num_classes = num_classes
        self.class_uniform_pct = class_uniform_pct
        self.edge_width = edge_width
        self.seed = seed
        self.mean, self.std = tuple(mean), tuple(std)
        self.lut = label_id_to_train_id_lut()
        self._plans: dict[int, list[PlanItem]] = {}
        self._size = len(self.plan(0))

    def plan(self, epoch: int) -> list[PlanItem]:
        """The class-uniform plan of ``epoch`` (deterministic in ``seed`` and ``epoch``)."""
        if epoch not in self._plans:
            rng = np.random.default_rng([self.seed, epoch, 0])
            self._plans = {  # keep only the latest: a loader walks the epochs in order
                epoch: build_epoch_plan(
                    len(self.samples), self.centroids, self.num_classes, self.class_uniform_pct, rng
                )
            }
        return self._plans[epoch]

    def __len__(self) -> int:
        return self._size

    def __getitem__(self, key: int) -> dict[str, torch.Tensor]:
        epoch, index = divmod(key, self._size)
        image_index, centroid = self.plan(epoch)[index]
        sample = self.samples[image_index]
        rng = np.random.default_rng([self.seed, epoch, 1, index])
        image = _read_rgb(sample.image)
        labels = read_train_ids(sample.label, self.lut)
        image, labels = self.augmentation(image, labels, rng, centroid)
        edges = edges_from_labels(labels, self.num_classes, self.edge_width)
        return {
            "image": normalize(image, self.mean, self.std),
            "labels": torch.from_numpy(labels.astype(np.int64)),
            "edges": torch.from_numpy(edges.astype(np.float32)),
        }


class CityscapesEvalSet(Dataset):
    """Whole images for evaluation: ``image`` H x W x 3 uint8 RGB (not normalised: each consumer
    applies its checkpoint's preprocessing), ``labels`` H x W int64 train IDs, ``name``."""

    def __init__(self, samples: Sequence[Sample]) -> None:
        self.samples = list(samples)
        self.lut = label_id_to_train_id_lut()

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict:
        sample = self.samples[index]
        return {
            "image": torch.from_numpy(_read_rgb(sample.image)),
            "labels": torch.from_numpy(read_train_ids(sample.label, self.lut).astype(np.int64)),
            "name": sample.name,
        }
