"""classes.yaml and the own-classes folder layout: what is read, and every mistake named."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from bialign_ros.class_table import ClassTableError, cityscapes_table, read_classes_yaml
from bialign_ros.classes import CITYSCAPES_NAMES, IGNORE_INDEX
from training.data import DatasetError, EvalSet, check_samples, class_table, find_samples

CLASSES = {
    "ignore": [0, 255],
    "classes": [
        {"name": "path", "color": [128, 64, 128], "values": [1]},
        {"name": "grass", "color": [0, 200, 0], "values": [2, 3]},
        {"name": "obstacle", "color": [200, 0, 0], "values": 7},
    ],
}


def _write_yaml(root: Path, data: dict) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "classes.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _write_pair(root: Path, split: str, rel: str, label: np.ndarray, suffix: str = ".png",
                image_size: tuple[int, int] | None = None) -> None:
    h, w = image_size or label.shape
    image = root / "images" / split / f"{rel}{suffix}"
    target = root / "labels" / split / f"{rel}.png"
    image.parent.mkdir(parents=True, exist_ok=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(image), np.full((h, w, 3), 90, np.uint8))
    cv2.imwrite(str(target), label.astype(np.uint8))


def test_classes_yaml_maps_label_values_to_train_ids(tmp_path):
    table = read_classes_yaml(_write_yaml(tmp_path, CLASSES))
    assert table.names == ("path", "grass", "obstacle")
    assert table.colors == ((128, 64, 128), (0, 200, 0), (200, 0, 0))
    assert table.lut[[0, 1, 2, 3, 7, 255]].tolist() == [IGNORE_INDEX, 0, 1, 1, 2, IGNORE_INDEX]
    assert table.label_values()[:3].tolist() == [1, 2, 7]  # a class's first value, for prediction PNGs
    table.check_label_map(np.array([[0, 1], [3, 255]]), "ok.png")
    with pytest.raises(ClassTableError, match=r"bad\.png holds label value\(s\) \[4, 9\] that no class"):
        table.check_label_map(np.array([[1, 4], [9, 9]]), "bad.png")


def test_cityscapes_table_is_the_official_mapping():
    table = cityscapes_table()
    assert table.names == CITYSCAPES_NAMES
    assert table.lut[[7, 8, 26, 0, 1]].tolist() == [0, 1, 13, IGNORE_INDEX, IGNORE_INDEX]
    assert table.label_values()[[0, 13]].tolist() == [7, 26]


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d["classes"][1].update(values=[1]), r"classes\[1\] \(grass\): label value 1 is already claimed by path"),
    (lambda d: d["classes"][0].update(values=[0]), r"label value 0 is already claimed by ignore"),
    (lambda d: d["classes"][2].update(color=[300, 0, 0]), r"color must be three integers 0-255"),
    (lambda d: d["classes"][2].update(name="path"), r"the name 'path' is used twice"),
    (lambda d: d["classes"][0].pop("values"), r"expected exactly the keys name, color, values"),
    (lambda d: d["classes"][0].update(values=[]), r"values must name at least one label value"),
    (lambda d: d["classes"][0].update(values=[256]), r"label values must be integers 0-255"),
    (lambda d: d.update(colours=1), r"unknown keys \['colours'\]"),
    (lambda d: d.update(classes=[]), r"non-empty 'classes' list"),
])
def test_classes_yaml_mistakes_are_named(tmp_path, change, message):
    data = yaml.safe_load(yaml.safe_dump(CLASSES))
    change(data)
    with pytest.raises(ClassTableError, match=message):
        read_classes_yaml(_write_yaml(tmp_path, data))


def test_own_layout_pairs_images_and_labels_by_stem(tmp_path):
    _write_yaml(tmp_path, CLASSES)
    label = np.array([[1, 2], [3, 0]])
    _write_pair(tmp_path, "train", "site_a/0001", label)
    _write_pair(tmp_path, "train", "site_b/0002", label, suffix=".jpg")
    samples = find_samples(tmp_path, "train")
    assert [s.name for s in samples] == ["0001", "0002"]
    assert samples[1].image.suffix == ".jpg" and samples[1].label == tmp_path / "labels/train/site_b/0002.png"
    assert class_table(tmp_path).names == ("path", "grass", "obstacle")
    check_samples(samples, class_table(tmp_path), progress=False)
    item = EvalSet(samples, class_table(tmp_path))[0]
    assert item["labels"].tolist() == [[0, 1], [1, IGNORE_INDEX]]


def test_own_layout_mistakes_are_named(tmp_path):
    _write_yaml(tmp_path, CLASSES)
    label = np.array([[1, 2], [3, 0]])
    with pytest.raises(DatasetError, match=r"no split 'train'.*images/train/\*\*/<stem>"):
        find_samples(tmp_path, "train")
    _write_pair(tmp_path, "train", "a/0001", label)
    _write_pair(tmp_path, "train", "a/0002", label)
    (tmp_path / "labels" / "train" / "a" / "0002.png").unlink()
    with pytest.raises(DatasetError, match=r"1 image\(s\) without a label .*0002\.png"):
        find_samples(tmp_path, "train")
    _write_pair(tmp_path, "train", "a/0002", label)
    _write_pair(tmp_path, "train", "b/0001", label)
    with pytest.raises(DatasetError, match=r"two files of stem '0001'"):
        find_samples(tmp_path, "train")
    for path in (tmp_path / "images" / "train" / "b" / "0001.png", tmp_path / "labels" / "train" / "b" / "0001.png"):
        path.unlink()
    (tmp_path / "labels" / "train" / "a" / "0003.png").write_bytes(
        (tmp_path / "labels" / "train" / "a" / "0001.png").read_bytes())
    with pytest.raises(DatasetError, match=r"1 label\(s\) without an image .*0003\.png"):
        find_samples(tmp_path, "train")
    (tmp_path / "labels" / "train" / "a" / "0003.png").unlink()

    table = class_table(tmp_path)
    _write_pair(tmp_path, "train", "a/0002", np.array([[1, 5], [3, 0]]))
    with pytest.raises(DatasetError, match=r"0002\.png holds label value\(s\) \[5\]"):
        check_samples(find_samples(tmp_path, "train"), table, progress=False)
    _write_pair(tmp_path, "train", "a/0002", label, image_size=(3, 2))
    with pytest.raises(DatasetError, match=r"0002\.png is 2 x 3 but its label .* is 2 x 2"):
        check_samples(find_samples(tmp_path, "train"), table, progress=False)
    _write_yaml(tmp_path, {"classes": [{"name": "x", "color": [0, 0, 0], "values": [1, 1]}]})
    with pytest.raises(DatasetError, match="listed twice"):
        class_table(tmp_path)
