"""Cityscapes-layout datasets, label mapping, edge ground truth, augmentation and sampling."""

import itertools
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from bialign_ros.class_table import cityscapes_table
from bialign_ros.classes import CITYSCAPES_CLASSES, IMAGENET_MEAN, IMAGENET_STD
from training.config import load_config
from training.data import (
    DatasetError,
    EvalSet,
    TrainSet,
    find_samples,
)
from training.edges import edges_from_labels
from training.sampler import (
    ShardedEpochSampler,
    build_centroid_index,
    build_epoch_plan,
    load_centroid_index,
    save_centroid_index,
    tile_centroids,
    tile_offsets,
)
from training.transforms import TrainAugmentation, color_jitter, gaussian_blur, normalize, random_crop

ROAD, SKY, CAR = 7, 23, 26  # Cityscapes label IDs; train IDs 0, 10, 13


def write_split(root: Path, split: str, names: list[str], height: int = 48, width: int = 96) -> None:
    """Tiny Cityscapes-layout split: road below, sky above, a car box; void (label 0) at the top row."""
    for i, name in enumerate(names):
        city = name.split("_")[0]
        ids = np.full((height, width), SKY, np.uint8)
        ids[height // 2 :] = ROAD
        ids[height // 3 : height * 2 // 3, 10 + 5 * i : 40 + 5 * i] = CAR
        ids[0] = 0
        image = np.zeros((height, width, 3), np.uint8)
        image[ids == SKY], image[ids == ROAD], image[ids == CAR] = (70, 130, 180), (128, 64, 128), (0, 0, 142)
        for folder, suffix, data in (
            ("leftImg8bit", "_leftImg8bit.png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR)),
            ("gtFine", "_gtFine_labelIds.png", ids),
        ):
            path = root / folder / split / city / f"{name}{suffix}"
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), data)


@pytest.fixture
def root(tmp_path):
    write_split(tmp_path, "train", ["aachen_000000_000019", "aachen_000001_000019", "bremen_000000_000019"])
    return tmp_path


def test_label_mapping_comes_from_cityscapesscripts_and_agrees_with_class_table():
    from cityscapesscripts.helpers.labels import labels

    lut = cityscapes_table().lut
    for train_id, info in enumerate(CITYSCAPES_CLASSES):
        assert lut[info.label_id] == train_id, info.name
    void_ids = [lab.id for lab in labels if lab.id >= 0 and lab.trainId in (255, -1)]
    assert void_ids and all(lut[i] == 255 for i in void_ids)
    assert (lut != 255).sum() == 19


def test_find_samples(root):
    samples = find_samples(root, "train")
    names = ["aachen_000000_000019", "aachen_000001_000019", "bremen_000000_000019"]
    assert [s.name for s in samples] == names
    assert samples[2].label == root / "gtFine/train/bremen/bremen_000000_000019_gtFine_labelIds.png"


def test_missing_data_is_named(root):
    with pytest.raises(DatasetError, match="no Cityscapes split 'val'.*leftImg8bit/val"):
        find_samples(root, "val")
    (root / "gtFine/train/bremen/bremen_000000_000019_gtFine_labelIds.png").unlink()
    with pytest.raises(DatasetError, match="has no label file .*bremen_000000_000019_gtFine_labelIds.png"):
        find_samples(root, "train")


def test_eval_set_maps_label_ids_to_train_ids(root):
    item = EvalSet(find_samples(root, "train"))[0]
    assert item["name"] == "aachen_000000_000019"
    assert item["image"].dtype == torch.uint8 and item["image"].shape == (48, 96, 3)
    assert tuple(item["image"][47, 0].tolist()) == (128, 64, 128)  # RGB order
    labels = item["labels"]
    assert labels.dtype == torch.int64
    assert set(labels.unique().tolist()) == {0, 10, 13, 255}
    assert (labels[0] == 255).all() and labels[47, 0] == 0 and labels[20, 20] == 13


def _train_set(root, **kw):
    samples = find_samples(root, "train")
    lut = cityscapes_table().lut
    centroids = build_centroid_index([lut[cv2.imread(str(s.label), -1)] for s in samples], 19, 32)
    aug = TrainAugmentation(crop_size=32, **kw)
    return TrainSet(samples, aug, centroids, class_uniform_pct=0.5, seed=5)


def test_train_items_are_normalised_crops_with_edges(root):
    ds = _train_set(root)
    item = ds[1]
    assert item["image"].shape == (3, 32, 32) and item["image"].dtype == torch.float32
    assert item["labels"].shape == (32, 32) and item["labels"].dtype == torch.int64
    assert set(item["labels"].unique().tolist()) <= {0, 10, 13, 255}
    expected = edges_from_labels(item["labels"].numpy().astype(np.uint8), 19, 2)
    np.testing.assert_array_equal(item["edges"].numpy(), expected)
    # Black padding (scale < 1 makes the image smaller than the crop) normalises to -mean/std.
    assert item["image"].min() >= min(-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)) - 1e-5


def test_train_items_depend_only_on_seed_epoch_and_index(root):
    ds = _train_set(root)
    a = ds[2]
    b = ds[3 * len(ds) + 2]  # the same index in epoch 3
    c = _train_set(root)[2]
    assert torch.equal(a["image"], ds[2]["image"]) and torch.equal(a["image"], c["image"])
    assert not torch.equal(a["image"], b["image"])
    assert ds.plan(0) != ds.plan(3) and len(ds.plan(3)) == len(ds)


def test_the_config_data_section_is_the_augmentation(root):
    cfg = load_config(None, ["data.crop_size=24", "data.scale_min=1.0", "data.scale_max=1.0"])
    assert isinstance(cfg.data, TrainAugmentation)
    # the defaults are declared once: a config's data section and a bare augmentation agree
    assert TrainAugmentation() == TrainAugmentation(**{k: getattr(load_config(None).data, k)
                                                       for k in TrainAugmentation.__dataclass_fields__})
    samples = find_samples(root, "train")
    train_set = TrainSet(samples, cfg.data, build_centroid_index([], 19, 32),
                         class_uniform_pct=0.0, seed=5)
    assert train_set[0]["image"].shape == (3, 24, 24)


def test_augmentation_values_are_checked():
    with pytest.raises(ValueError, match="blur_sigma must be"):
        TrainAugmentation(blur_sigma=(1.0, 0.5))


def test_augmentation_keeps_image_and_labels_aligned():
    labels = np.zeros((40, 80), np.uint8)
    labels[:, 40:] = 1
    image = np.zeros((40, 80, 3), np.uint8)
    image[labels == 0] = (255, 0, 0)
    image[labels == 1] = (0, 0, 255)
    aug = TrainAugmentation(crop_size=24, scale_min=0.7, scale_max=1.5, color_jitter=0.0, blur_prob=0.0)
    flipped_seen = False
    for seed in range(20):
        img, lab = aug(image, labels, np.random.default_rng(seed))
        assert img.shape == (24, 24, 3) and lab.shape == (24, 24)
        valid = lab != 255
        red_is_zero = (img[..., 0] > img[..., 2]) == (lab == 0)
        assert red_is_zero[valid].mean() > 0.9, seed
        flipped_seen |= bool(valid[:, 0].any() and lab[valid[:, 0], 0].min() == 1)
    assert flipped_seen  # some crops were mirrored (class 1 on the left)


def test_crop_contains_centroid_and_pads_with_ignore():
    image = np.zeros((50, 70, 3), np.uint8)
    labels = np.arange(50 * 70).reshape(50, 70) % 251
    labels = labels.astype(np.uint8)
    for seed in range(30):
        rng = np.random.default_rng(seed)
        cx, cy = int(rng.integers(0, 70)), int(rng.integers(0, 50))
        _, lab = random_crop(image, labels, 20, rng, centroid=(cx, cy))
        assert labels[cy, cx] in lab
    img, lab = random_crop(image[:10, :12], labels[:10, :12], 16, np.random.default_rng(0))
    assert lab.shape == (16, 16) and (lab == 255).sum() == 16 * 16 - 10 * 12
    assert (img[lab == 255] == 0).all()


def test_color_jitter_brightness_on_gray_and_blur():
    gray = np.full((8, 8, 3), 100, np.uint8)
    out = color_jitter(gray, 0.25, np.random.default_rng(0))
    assert out.dtype == np.uint8 and out.shape == gray.shape
    assert len(np.unique(out)) == 1 and 75 <= out[0, 0, 0] <= 125 and out[0, 0, 0] != 100
    noise = np.random.default_rng(0).integers(0, 256, (32, 32, 3)).astype(np.uint8)
    assert gaussian_blur(noise, 1.3).std() < 0.5 * noise.std()


def test_normalize():
    x = normalize(np.full((2, 3, 3), 255, np.uint8), (0.5, 0.5, 0.5), (0.25, 0.5, 1.0))
    assert x.shape == (3, 2, 3)
    np.testing.assert_allclose(x[:, 0, 0].numpy(), [2.0, 1.0, 0.5])
    with pytest.raises(ValueError, match="H x W x 3 uint8"):
        normalize(np.zeros((2, 3), np.uint8), (0, 0, 0), (1, 1, 1))


def test_edges_follow_class_boundaries_only():
    labels = np.zeros((20, 30), np.uint8)
    assert edges_from_labels(labels, 19).sum() == 0
    labels[:, 15:] = 4
    edges = edges_from_labels(labels, 19, width=2)
    cols = np.nonzero(edges.any(axis=0))[0]
    assert 13 <= cols.min() and cols.max() <= 16  # a band around the boundary between columns 14 and 15
    assert edges[:3].sum() == 0 and edges[-3:].sum() == 0  # border frame of width + 1 cleared
    assert edges[3:-3, 14].all() and edges[3:-3, 15].all()
    labels[8:12, 4:8] = 255  # a region of ignored pixels is bounded by its neighbour's contour
    assert edges_from_labels(labels, 19)[8:12, 3:9].any()
    assert edges_from_labels(labels, 19, width=4).sum() > edges_from_labels(labels, 19, width=2).sum()


def test_tile_centroids_cover_the_whole_image_with_all_tiles():
    labels = np.full((6, 10), 255, np.uint8)
    labels[0:2, 0:4] = 1
    labels[:, 8:] = 2  # only in the partial right-hand tiles
    found = tile_centroids(labels, 19, tile=4, all_tiles=True)
    assert found[1] == [(1, 0)]
    assert sorted(found[2]) == [(8, 1), (8, 4)]
    assert 255 not in found


def test_authors_tiles_are_the_whole_tiles_of_the_leftmost_column():
    """Their loops run over H // tile rows and W // W = 1 column: a 1024 x 2048 Cityscapes label
    map with 1024-pixel tiles gives centroids from its left half only."""
    labels = np.full((1024, 2048), 255, np.uint8)
    labels[:, :1024] = 0
    labels[:, 1024:] = 1  # right half: never a centroid
    assert tile_offsets(1024, 2048, 1024, all_tiles=False) == [(0, 0)]
    found = tile_centroids(labels, 19, tile=1024)
    assert found == {0: [(511, 511)]}
    assert tile_offsets(1024, 2048, 1024, all_tiles=True) == [(0, 0), (0, 1024)]
    assert tile_offsets(10, 6, 4, all_tiles=False) == [(0, 0), (4, 0)]  # the partial row is skipped
    assert tile_offsets(3, 8, 4, all_tiles=False) == []


def test_epoch_plan_proportions():
    centroids = {c: [(c, (c, c))] for c in range(19) if c != 5}
    plan = build_epoch_plan(38, centroids, 19, 0.5, np.random.default_rng(0))
    uniform = [p for p in plan if p[1] is not None]
    assert len(plan) == 19 + 18 and len(uniform) == 18  # class 5 has no centroid
    assert sorted(i for i, _ in uniform) == [c for c in range(19) if c != 5]
    assert all(c is None for _, c in plan[:19])
    assert plan == build_epoch_plan(38, centroids, 19, 0.5, np.random.default_rng(0))


def test_centroid_cache(tmp_path):
    index = {0: [(0, (1, 2))], 1: []}
    save_centroid_index(tmp_path / "c.json", index, "k1")
    assert load_centroid_index(tmp_path / "c.json", "k1") == index
    assert load_centroid_index(tmp_path / "c.json", "other") is None


def test_sharded_sampler_splits_epochs_and_resumes():
    ranks = [ShardedEpochSampler(23, 10, num_replicas=2, rank=r, seed=1) for r in range(2)]
    a, b = (list(itertools.islice(s, 30)) for s in ranks)  # three epochs of 10 keys each
    assert not set(a) & set(b)
    assert all(k // 23 == i // 10 for i, k in enumerate(a))  # keys are epoch * size + index
    assert len({k % 23 for k in a[:10] + b[:10]}) == 20  # no sample twice in an epoch
    assert [k % 23 for k in a[:10]] != [k % 23 for k in a[10:20]]  # each epoch its own order
    ranks[0].set_start(1, start=4)
    assert list(itertools.islice(ranks[0], 16)) == a[14:30]
    with pytest.raises(ValueError, match="2 x 12 samples requested from an epoch of only 23"):
        ShardedEpochSampler(23, 12, num_replicas=2, rank=0)
