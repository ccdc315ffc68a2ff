"""Training and evaluation data sets in two folder layouts.

Cityscapes, in its official layout: ``ROOT/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png``
images and ``ROOT/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png`` label-ID maps.
Label IDs become the 19 train IDs through the table of the official ``cityscapesscripts``
package; every other label (void classes, license plate, ...) becomes the ignore index 255.

One's own classes: ``ROOT/classes.yaml`` (see :mod:`bialign_ros.class_table`),
``ROOT/images/<split>/**/<stem>.{png,jpg,...}`` and ``ROOT/labels/<split>/**/<stem>.png``
(8-bit, one channel), paired by file stem, which must be unique within a split. A root with a
``classes.yaml`` is read in this layout.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from bialign_ros.class_table import CLASSES_FILE, ClassTable, ClassTableError, cityscapes_table, read_classes_yaml
from bialign_ros.classes import IMAGENET_MEAN, IMAGENET_STD
from bialign_ros.image_files import IMAGE_SUFFIXES, read_rgb
from training.edges import edges_from_labels
from training.sampler import CentroidIndex, PlanItem, build_epoch_plan
from training.transforms import TrainAugmentation, normalize

IMAGE_DIR, IMAGE_SUFFIX = "leftImg8bit", "_leftImg8bit.png"
LABEL_DIR, LABEL_SUFFIX = "gtFine", "_gtFine_labelIds.png"
OWN_IMAGE_DIR, OWN_LABEL_DIR = "images", "labels"


class DatasetError(ValueError):
    """The data set folder is missing, incomplete or in neither layout."""


@dataclass(frozen=True)
class Sample:
    """One annotated image: its files and its name (Cityscapes: ``<city>_<seq>_<frame>``; own
    classes: the file stem)."""

    image: Path
    label: Path
    name: str


def has_own_classes(root: str | Path) -> bool:
    """True when ``root`` is in the own-classes layout (it holds a ``classes.yaml``)."""
    return (Path(root) / CLASSES_FILE).is_file()


def class_table(root: str | Path) -> ClassTable:
    """The classes of the data set at ``root``: its ``classes.yaml``, else the Cityscapes table."""
    if not has_own_classes(root):
        return cityscapes_table()
    try:
        return read_classes_yaml(Path(root) / CLASSES_FILE)
    except ClassTableError as exc:
        raise DatasetError(str(exc)) from None


def find_samples(root: str | Path, split: str) -> list[Sample]:
    """All image/label pairs of ``split``, sorted by name, in the layout of ``root``.

    Raises :class:`DatasetError` naming the expected paths when the split is missing, empty or
    an image has no label file.
    """
    find = _find_own_samples if has_own_classes(root) else _find_cityscapes_samples
    return find(Path(root), split)


def _find_cityscapes_samples(root: Path, split: str) -> list[Sample]:
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


def _find_own_samples(root: Path, split: str) -> list[Sample]:
    image_root, label_root = root / OWN_IMAGE_DIR / split, root / OWN_LABEL_DIR / split
    if not image_root.is_dir() or not label_root.is_dir():
        raise DatasetError(
            f"no split {split!r} under {root}: expected {image_root}/**/<stem>{{{','.join(IMAGE_SUFFIXES)}}} "
            f"and {label_root}/**/<stem>.png beside {root / CLASSES_FILE}"
        )
    images = _by_stem(image_root, IMAGE_SUFFIXES)
    labels = _by_stem(label_root, (".png",))
    for what, names, where in (("image(s) without a label", set(images) - set(labels), label_root),
                               ("label(s) without an image", set(labels) - set(images), image_root)):
        if names:
            shown = ", ".join(str((images | labels)[n]) for n in sorted(names)[:5])
            raise DatasetError(f"{len(names)} {what} of the same stem in {where}: {shown}"
                               f"{' ...' if len(names) > 5 else ''}")
    if not images:
        raise DatasetError(f"no images under {image_root}")
    return [Sample(image=images[n], label=labels[n], name=n) for n in sorted(images)]


def _by_stem(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() in suffixes and path.is_file():
            if path.stem in found:
                raise DatasetError(f"two files of stem {path.stem!r}: {found[path.stem]} and {path}")
            found[path.stem] = path
    return found


def check_samples(samples: Sequence[Sample], table: ClassTable, progress: bool = True) -> None:
    """Read every label map (and every image's header) of ``samples``: a label value no class
    claims, or an image and label of different sizes, raises :class:`DatasetError` naming the files."""
    from tqdm import tqdm

    for sample in tqdm(samples, desc="check labels", leave=False, disable=not progress):
        label = _read_label(sample.label)
        try:
            table.check_label_map(label, sample.label)
        except ClassTableError as exc:
            raise DatasetError(str(exc)) from None
        with Image.open(sample.image) as image:
            width, height = image.size
        if (height, width) != label.shape:
            raise DatasetError(f"{sample.image} is {width} x {height} but its label {sample.label} is "
                               f"{label.shape[1]} x {label.shape[0]}")


def _read_rgb(path: Path) -> np.ndarray:
    try:
        return read_rgb(path)
    except ValueError as exc:
        raise DatasetError(str(exc)) from exc


def _read_label(path: str | Path) -> np.ndarray:
    ids = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if ids is None or ids.ndim != 2 or ids.dtype != np.uint8:
        raise DatasetError(f"cannot read {path} as an 8-bit single-channel label map")
    return ids


def read_train_ids(path: str | Path, lut: np.ndarray) -> np.ndarray:
    """Read a label PNG and map it to an H x W uint8 train-ID map through ``lut``."""
    return lut[_read_label(path)]


def read_pair(sample: Sample, lut: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A sample's RGB image and train-ID map; different sizes raise :class:`DatasetError`."""
    image, labels = _read_rgb(sample.image), read_train_ids(sample.label, lut)
    if image.shape[:2] != labels.shape:
        raise DatasetError(f"{sample.image} is {image.shape[1]} x {image.shape[0]} but its label "
                           f"{sample.label} is {labels.shape[1]} x {labels.shape[0]}")
    return image, labels


def iter_train_ids(samples: Sequence[Sample], lut: np.ndarray) -> Iterator[np.ndarray]:
    """Train-ID maps of ``samples`` in order (for centroid indexing)."""
    for sample in samples:
        yield read_train_ids(sample.label, lut)


class TrainSet(Dataset):
    """Augmented training crops with labels and edge ground truth.

    Every epoch has its own class-uniform plan of ``len(self)`` samples; key
    ``epoch * len(self) + i`` is sample ``i`` of ``epoch``. It depends only on ``(seed, epoch, i)``,
    whatever the number of loader workers or processes, so an interrupted run resumes with the
    very same samples. Items are dicts: ``image`` 3 x S x S float (normalised), ``labels`` S x S
    int64 train IDs, ``edges`` S x S float (0/1). ``table`` maps label values to train IDs
    (default: the Cityscapes table).
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        augmentation: TrainAugmentation,
        centroids: CentroidIndex,
        table: ClassTable | None = None,
        class_uniform_pct: float = 0.5,
        edge_width: int = 2,
        seed: int = 0,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        self.samples = list(samples)
        self.augmentation = augmentation
        self.centroids = centroids
        self.table = cityscapes_table() if table is None else table
        self.num_classes = self.table.num_classes
        self.class_uniform_pct = class_uniform_pct
        self.edge_width = edge_width
        self.seed = seed
        self.mean, self.std = tuple(mean), tuple(std)
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
        image, labels = read_pair(sample, self.table.lut)
        image, labels = self.augmentation(image, labels, rng, centroid)
        edges = edges_from_labels(labels, self.num_classes, self.edge_width)
        return {
            "image": normalize(image, self.mean, self.std),
            "labels": torch.from_numpy(labels.astype(np.int64)),
            "edges": torch.from_numpy(edges.astype(np.float32)),
        }


class EvalSet(Dataset):
    """Whole images for evaluation: ``image`` H x W x 3 uint8 RGB (not normalised: each consumer
    applies its checkpoint's preprocessing), ``labels`` H x W int64 train IDs, ``name``.
    ``table`` as in :class:`TrainSet`."""

    def __init__(self, samples: Sequence[Sample], table: ClassTable | None = None) -> None:
        self.samples = list(samples)
        self.table = cityscapes_table() if table is None else table

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict:
        sample = self.samples[index]
        image, labels = read_pair(sample, self.table.lut)
        return {
            "image": torch.from_numpy(image),
            "labels": torch.from_numpy(labels.astype(np.int64)),
            "name": sample.name,
        }
