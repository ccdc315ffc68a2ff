"""Class-uniform crop sampling and the resumable, sharded sampler of training batches.

Class-uniform sampling (the authors' ``datasets/uniform.py`` idea): every label map is cut into
tiles; for every class present in a tile the centre of mass of its pixels is recorded. Each
epoch, a fraction ``pct`` of the samples is a crop around a random centroid of each class in
turn (rare classes are seen as often as common ones); the rest are random crops of random
images. The authors' tiling covers only the whole tiles of the leftmost tile column of every
image (a loop bound bug): the default, kept to reproduce their training. ``all_tiles`` covers
the whole image, including partial tiles at its right and bottom.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Sampler

Centroid = tuple[int, int]
"""A pixel ``(x, y)`` of an unscaled label map."""
CentroidIndex = dict[int, list[tuple[int, Centroid]]]
"""Per train ID: ``(image index, centroid)`` of every tile that holds the class."""
PlanItem = tuple[int, Centroid | None]
"""One sample of an epoch: an image index and the centroid its crop must contain, if any."""


def tile_offsets(h: int, w: int, tile: int, all_tiles: bool) -> list[tuple[int, int]]:
    """Top-left corners ``(y, x)`` of the tiles of an H x W map: every tile, partial ones
    included, or the authors' whole tiles of the leftmost column (none when ``h < tile``)."""
    if all_tiles:
        return [(y, x) for y in range(0, h, tile) for x in range(0, w, tile)]
    return [(y, 0) for y in range(0, (h // tile) * tile, tile) if w >= tile]


def tile_centroids(
    train_ids: np.ndarray, num_classes: int, tile: int, all_tiles: bool = False
) -> dict[int, list[Centroid]]:
    """Centroids ``(x, y)`` of every class in every tile (see :func:`tile_offsets`) of one label map."""
    found: dict[int, list[Centroid]] = {}
    for y0, x0 in tile_offsets(*train_ids.shape, tile, all_tiles):
        patch = train_ids[y0 : y0 + tile, x0 : x0 + tile]
        for class_id in np.unique(patch):
            if class_id >= num_classes:
                continue
            ys, xs = np.nonzero(patch == class_id)
            found.setdefault(int(class_id), []).append((x0 + int(xs.mean()), y0 + int(ys.mean())))
    return found


def build_centroid_index(
    label_maps: Sequence, num_classes: int, tile: int, all_tiles: bool = False
) -> CentroidIndex:
    """:func:`tile_centroids` of every map; ``label_maps`` yields H x W train-ID arrays in order."""
    index: CentroidIndex = {c: [] for c in range(num_classes)}
    for image_index, train_ids in enumerate(label_maps):
        for class_id, points in tile_centroids(train_ids, num_classes, tile, all_tiles).items():
            index[class_id].extend((image_index, p) for p in points)
    return index


def centroid_cache_key(names: Sequence[str], num_classes: int, tile: int, all_tiles: bool = False) -> str:
    """A short hash identifying a centroid index (file list, class count, tiling)."""
    digest = hashlib.sha1("\n".join([*names, str(num_classes), str(tile), str(all_tiles)]).encode()).hexdigest()
    return digest[:16]


def save_centroid_index(path: str | Path, index: CentroidIndex, key: str) -> None:
    """Write a centroid index to JSON (atomically) with the key it was computed for."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"key": key, "centroids": {str(c): [[i, x, y] for i, (x, y) in v] for c, v in index.items()}}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload))
    tmp.replace(path)


def load_centroid_index(path: str | Path, key: str) -> CentroidIndex | None:
    """Read a centroid index written by :func:`save_centroid_index`; None if absent or stale."""
    path = Path(path)
    if not path.is_file():
        return None
    payload = json.loads(path.read_text())
    if payload.get("key") != key:
        return None
    return {int(c): [(i, (x, y)) for i, x, y in v] for c, v in payload["centroids"].items()}


def build_epoch_plan(
    num_images: int, centroids: CentroidIndex, num_classes: int, pct: float, rng: np.random.Generator
) -> list[PlanItem]:
    """The samples of one epoch, in the authors' proportions.

    ``int(num_images * pct / num_classes)`` centroid crops per class (classes without any
    centroid are skipped), and random crops of random images for the rest of ``num_images``.
    Lists shorter than the number drawn from them are cycled through in a random order.
    """
    if num_images < 1:
        raise ValueError("cannot plan an epoch over an empty dataset")
    per_class = int(num_images * pct / num_classes)
    num_random = num_images - per_class * num_classes
    plan: list[PlanItem] = [(int(i), None) for i in _cycled_choice(num_images, num_random, rng)]
    for class_id in range(num_classes):
        points = centroids.get(class_id, [])
        if points and per_class:
            plan.extend(points[int(j)] for j in _cycled_choice(len(points), per_class, rng))
    return plan


class ShardedEpochSampler(Sampler[int]):
    """Endless stream of shuffled epochs, split between processes, resumable mid-epoch.

    Yields keys ``epoch * size + index`` (see :class:`training.data.TrainSet`), epoch
    after epoch, so one loader (and its worker processes) serves the whole run. An epoch's
    permutation depends only on ``(seed, epoch)``: every process derives the same one and takes
    every ``num_replicas``-th index from ``rank`` on. Only the first
    ``samples_per_replica * num_replicas`` indices are used, so all processes run the same number
    of steps. ``set_start(epoch, start)`` begins at that epoch, skipping the first ``start``
    indices of this process (those consumed before an interruption).
    """

    def __init__(
        self, size: int, samples_per_replica: int, num_replicas: int = 1, rank: int = 0, seed: int = 0
    ) -> None:
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is not in 0..{num_replicas - 1}")
        if samples_per_replica * num_replicas > size:
            raise ValueError(
                f"{num_replicas} x {samples_per_replica} samples requested from an epoch of only {size}"
            )
        self.size = size
        self.samples_per_replica = samples_per_replica
        self.num_replicas = num_replicas
        self.rank = rank
        self.seed = seed
        self.epoch = 0
        self.start = 0

    def set_start(self, epoch: int, start: int = 0) -> None:
        """Where iteration begins: the epoch and how many of this process's indices to skip."""
        if not 0 <= start <= self.samples_per_replica:
            raise ValueError(f"start {start} is not in 0..{self.samples_per_replica}")
        self.epoch = epoch
        self.start = start

    def epoch_indices(self, epoch: int) -> list[int]:
        """This process's sample indices of ``epoch``, in order."""
        g = torch.Generator()
        g.manual_seed(self.seed * 1_000_003 + epoch)
        order = torch.randperm(self.size, generator=g)[: self.samples_per_replica * self.num_replicas]
        return order[self.rank :: self.num_replicas].tolist()

    def __iter__(self) -> Iterator[int]:
        epoch, start = self.epoch, self.start
        while True:
            for index in self.epoch_indices(epoch)[start:]:
                yield epoch * self.size + index
            epoch, start = epoch + 1, 0


def _cycled_choice(n: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` indices into ``range(n)``: a random permutation repeated as often as needed."""
    if count <= 0:
        return np.zeros(0, dtype=np.int64)
    order = rng.permutation(n)
    return order[np.arange(count) % n]
