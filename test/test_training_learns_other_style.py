"""Training learns from Cityscapes-format data that the project's scene generator did not draw.

The scenes here are drawn by a small generator of their own: flat colours (no textures, no
lighting, no noise), a palette unlike both the project's generator and real streets (peach skies,
purple roads, brick and ochre blocks, teal tree discs), and their own layouts (horizon anywhere
between a third and three fifths of the height, roads as straight or curving bands of any width,
flat-roofed blocks, disc trees, box-and-cabin cars, ellipse-and-head people scattered at random).
They are written as a Cityscapes data set with label-ID maps and read by the training package's
own loaders, so this checks the training and evaluation path on data it was not tuned for.
"""

from pathlib import Path

import cv2
import numpy as np
import pytest
from test_training_learns import _majority_baseline, train_and_evaluate

HEIGHT, WIDTH = 64, 128

# Cityscapes label IDs (training.data maps them to train IDs through cityscapesscripts).
EGO_VEHICLE = 1  # void: ignored by training and evaluation
ROAD, SIDEWALK, BUILDING, VEGETATION, SKY, PERSON, CAR = 7, 8, 11, 21, 23, 24, 26

# RGB base colours, jittered per scene or per object.
SKY_COLORS = [(250, 212, 160), (236, 190, 226), (214, 236, 150)]
ROAD_COLORS = [(92, 58, 104), (120, 72, 60)]
SIDEWALK_COLORS = [(172, 172, 208), (200, 226, 226)]
BUILDING_COLORS = [(178, 84, 58), (206, 164, 80), (126, 96, 150), (228, 228, 214)]
TREE_COLORS = [(36, 150, 134), (60, 110, 170)]
CAR_COLORS = [(244, 236, 30), (24, 206, 244), (250, 116, 6), (16, 16, 16)]
PERSON_COLORS = [(206, 0, 150), (30, 30, 30), (0, 120, 60)]
HEAD_COLOR = (92, 52, 30)


class _Canvas:
    """An RGB image and its label-ID map, drawn together with the same aliased primitives so every
    label pixel is exactly the surface shown in the image."""

    def __init__(self, height: int, width: int) -> None:
        self.image = np.zeros((height, width, 3), np.uint8)
        self.labels = np.zeros((height, width), np.uint8)

    def _both(self, draw, label_id: int, color) -> None:
        draw(self.image, tuple(int(c) for c in color))
        draw(self.labels, int(label_id))

    def polygon(self, points, label_id: int, color) -> None:
        pts = [np.round(np.asarray(points, np.float64)).astype(np.int32)]
        self._both(lambda img, c: cv2.fillPoly(img, pts, c, lineType=cv2.LINE_8), label_id, color)

    def rect(self, x0, y0, x1, y1, label_id: int, color) -> None:
        self.polygon([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], label_id, color)

    def ellipse(self, cx, cy, rx, ry, label_id: int, color) -> None:
        center, axes = (round(cx), round(cy)), (max(1, round(rx)), max(1, round(ry)))
        self._both(lambda img, c: cv2.ellipse(img, center, axes, 0, 0, 360, c, -1, cv2.LINE_8), label_id, color)


def _jitter(rng: np.random.Generator, palette, amount: int = 22) -> np.ndarray:
    base = np.asarray(palette[rng.integers(len(palette))], np.float64)
    return np.clip(base + rng.integers(-amount, amount + 1, 3), 0, 255)


def draw_flat_scene(rng: np.random.Generator, height: int = HEIGHT, width: int = WIDTH):
    """One flat-shaded street scene: H x W x 3 uint8 RGB image and H x W uint8 Cityscapes label IDs."""
    h, w = height, width
    canvas = _Canvas(h, w)
    horizon = rng.uniform(0.33, 0.6) * h
    canvas.rect(0, 0, w, horizon, SKY, _jitter(rng, SKY_COLORS, 14))

    # Flat-roofed blocks standing on the horizon, with gaps of sky between some of them.
    x = rng.uniform(-0.2, 0.1) * w
    while x < w:
        block_w = rng.uniform(0.12, 0.4) * w
        if rng.random() < 0.8:
            top = horizon - rng.uniform(0.15, 0.9) * horizon
            canvas.rect(x, top, x + block_w, horizon + 1, BUILDING, _jitter(rng, BUILDING_COLORS))
        x += block_w + (rng.uniform(0.02, 0.15) * w if rng.random() < 0.4 else 0)

    # Trees: discs of foliage, some on a trunk (a tree trunk is vegetation in Cityscapes).
    tree_color = _jitter(rng, TREE_COLORS, 16)
    for _ in range(rng.integers(0, 5)):
        cx, r = rng.uniform(0, w), rng.uniform(0.05, 0.16) * h
        base = horizon + rng.uniform(0, 0.08) * h
        trunk = rng.uniform(0.5, 1.5) * r
        canvas.rect(cx - r * 0.15, base - trunk, cx + r * 0.15, base, VEGETATION, tree_color * 0.6)
        canvas.ellipse(cx, base - trunk - r * 0.7, r, r, VEGETATION, tree_color)

    # Ground: sidewalk everywhere below the horizon, the road a band from the bottom edge to a
    # vanishing point, its centre line bending by a random amount.
    canvas.rect(0, horizon, w, h, SIDEWALK, _jitter(rng, SIDEWALK_COLORS, 14))
    far_x = rng.uniform(0.2, 0.8) * w
    near_x = far_x + rng.uniform(-0.35, 0.35) * w
    bend = rng.uniform(-0.3, 0.3) * w if rng.random() < 0.5 else 0.0
    near_half, far_half = rng.uniform(0.2, 0.6) * w, rng.uniform(0.0, 0.04) * w
    t = np.linspace(0, 1, 24)  # 0 at the horizon, 1 at the bottom edge
    centre = far_x + (near_x - far_x) * t + bend * t * (1 - t)
    half = far_half + (near_half - far_half) * t
    ys = horizon + (h - horizon) * t
    left, right = np.stack([centre - half, ys], 1), np.stack([centre + half, ys], 1)
    canvas.polygon(np.concatenate([left, right[::-1]]), ROAD, _jitter(rng, ROAD_COLORS, 14))

    def road_x(y: float) -> tuple[float, float]:
        s = np.clip((y - horizon) / (h - horizon), 0, 1)
        c = far_x + (near_x - far_x) * s + bend * s * (1 - s)
        return c, far_half + (near_half - far_half) * s

    # Cars on the road and people anywhere on the ground, smaller towards the horizon, drawn
    # from far to near so nearer ones hide farther ones.
    things = [("car", rng.uniform(0.08, 1.0)) for _ in range(rng.integers(0, 4))]
    things += [("person", rng.uniform(0.05, 1.0)) for _ in range(rng.integers(0, 5))]
    for kind, depth in sorted(things, key=lambda item: item[1]):
        y = horizon + depth * (h - horizon)
        scale = (y - horizon) / (h - horizon)
        if kind == "car":
            c, half_w = road_x(y)
            cx = c + rng.uniform(-0.7, 0.7) * half_w
            car_w, car_h = scale * rng.uniform(0.3, 0.45) * w, scale * rng.uniform(0.3, 0.42) * h
            color = _jitter(rng, CAR_COLORS)
            canvas.rect(cx - car_w / 2, y - car_h * 0.6, cx + car_w / 2, y, CAR, color)
            canvas.rect(cx - car_w * 0.32, y - car_h, cx + car_w * 0.32, y - car_h * 0.55, CAR, color * 0.7)
        else:
            cx = rng.uniform(0, w)
            tall = scale * rng.uniform(0.45, 0.7) * h
            canvas.ellipse(cx, y - tall * 0.42, tall * 0.16, tall * 0.42, PERSON, _jitter(rng, PERSON_COLORS))
            canvas.ellipse(cx, y - tall * 0.9, tall * 0.1, tall * 0.1, PERSON, HEAD_COLOR)

    # Now and then an ego-vehicle bonnet at the bottom edge (void: ignored by training and evaluation).
    if rng.random() < 0.3:
        canvas.ellipse(w / 2, h, w * rng.uniform(0.4, 0.7), h * rng.uniform(0.06, 0.14), EGO_VEHICLE, (12, 12, 12))
    return canvas.image, canvas.labels


def write_flat_cityscapes(root: Path, split: str, city: str, num_images: int, seed: int) -> None:
    """``num_images`` flat scenes as ``root/leftImg8bit/<split>/<city>/<city>_<seq>_000019_leftImg8bit.png``
    and ``root/gtFine/<split>/<city>/<city>_<seq>_000019_gtFine_labelIds.png``."""
    rng = np.random.default_rng(seed)
    image_dir, label_dir = root / "leftImg8bit" / split / city, root / "gtFine" / split / city
    image_dir.mkdir(parents=True)
    label_dir.mkdir(parents=True)
    for index in range(num_images):
        image, labels = draw_flat_scene(rng)
        stem = f"{city}_{index:06d}_000019"
        assert cv2.imwrite(str(image_dir / f"{stem}_leftImg8bit.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        assert cv2.imwrite(str(label_dir / f"{stem}_gtFine_labelIds.png"), labels)


def test_flat_scenes_are_a_cityscapes_data_set(tmp_path):
    from training.data import EvalSet, find_samples

    write_flat_cityscapes(tmp_path, "val", "flatford", 6, seed=3)
    items = list(EvalSet(find_samples(tmp_path, "val")))
    assert [item["name"] for item in items] == [f"flatford_{i:06d}_000019" for i in range(6)]
    train_ids = np.concatenate([item["labels"].numpy().ravel() for item in items])
    # road, sidewalk, building, vegetation, sky, person, car (train IDs) and void
    assert set(np.unique(train_ids)) <= {0, 1, 2, 8, 10, 11, 13, 255}
    assert {0, 1, 10}.issubset(set(np.unique(train_ids)))


@pytest.mark.slow
@pytest.mark.long
def test_training_learns_flat_scenes_of_another_style(tmp_path, one_thread):
    root = tmp_path / "data"
    write_flat_cityscapes(root, "train", "flatton", 32, seed=0)
    write_flat_cityscapes(root, "val", "flatford", 8, seed=500)
    _, metrics = train_and_evaluate(root, tmp_path, steps=200)
    base_miou, base_acc = _majority_baseline(root)
    iou = {name: v for name, v in metrics["per_class_iou"].items() if v is not None}
    print(f"held-out flat-style mIoU {metrics['miou']:.3f} (majority-class baseline {base_miou:.3f}), "
          f"pixel accuracy {metrics['pixel_accuracy']:.3f} (baseline {base_acc:.3f}); "
          + ", ".join(f"{name} {v:.2f}" for name, v in iou.items()))
    # 200 steps from scratch (this seed, with the authors' loss and evaluation protocol: 0.699 mIoU,
    # 0.873 pixel accuracy). Over five seeds of data and training: mIoU 0.61-0.74 against a
    # majority-class baseline of 0.04-0.05 (sidewalk or sky everywhere), pixel accuracy 0.79-0.89
    # against 0.29-0.31; the lowest class IoU of any run was 0.38 (building). 30 steps reach only
    # 0.32 mIoU, 0.67 pixel accuracy, with vegetation and person at 0.00.
    assert metrics["miou"] > max(0.45, 8 * base_miou)
    assert metrics["pixel_accuracy"] > base_acc + 0.4
    seven = ("road", "sidewalk", "building", "vegetation", "sky", "person", "car")
    assert {name: round(iou.get(name, 0.0), 2) for name in seven if iou.get(name, 0.0) <= 0.25} == {}
