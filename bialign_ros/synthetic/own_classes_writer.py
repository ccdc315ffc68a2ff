"""Write synthetic frames as a data set of one's own classes.

The five-class table of :mod:`bialign_ros.synthetic.five_classes` in the own-classes layout
(:mod:`bialign_ros.class_table`): ``root/classes.yaml``, ``root/images/<split>/<group>/<stem>.png``
and ``root/labels/<split>/<group>/<stem>.png``. The label values are not the train IDs (class
``i`` is written as ``10 * (i + 1)``, unlabelled pixels as 0), as in a labelling tool's export.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml
from tqdm import tqdm

from bialign_ros.class_table import CLASSES_FILE
from bialign_ros.classes import IGNORE_INDEX
from bialign_ros.image_files import write_png
from bialign_ros.synthetic.cityscapes_writer import image_seed
from bialign_ros.synthetic.five_classes import FIVE_CLASS_COLORS, FIVE_CLASS_NAMES, to_five_classes
from bialign_ros.synthetic.sequence import render_scene

UNLABELLED = 0
"""Label value of pixels of no class."""


def label_value(train_id: int) -> int:
    """The label value written for a five-class train ID."""
    return 10 * (train_id + 1)


def write_own_classes(
    root: str | Path,
    split: str = "train",
    num_images: int = 10,
    height: int = 512,
    width: int = 1024,
    seed: int = 0,
    progress: bool = True,
) -> list[Path]:
    """Render ``num_images`` scenes into a five-class own-classes data set under ``root`` (and
    its ``classes.yaml``); returns the written image paths. Scenes depend on ``seed``, ``split``
    and the index, as :func:`bialign_ros.synthetic.write_cityscapes`'s do."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    classes = [{"name": name, "color": list(color), "values": [label_value(i)]}
               for i, (name, color) in enumerate(zip(FIVE_CLASS_NAMES, FIVE_CLASS_COLORS))]
    table = {"ignore": [UNLABELLED], "classes": classes}
    (root / CLASSES_FILE).write_text(yaml.safe_dump(table, sort_keys=False, default_flow_style=None))
    values = np.full(256, UNLABELLED, dtype=np.uint8)
    values[: len(FIVE_CLASS_NAMES)] = [label_value(i) for i in range(len(FIVE_CLASS_NAMES))]
    paths = []
    for index in tqdm(range(num_images), desc=f"synthesising {split}", unit="img", disable=not progress):
        frame = render_scene(image_seed(seed, split, index), height, width)
        rel = Path(f"run{index // 10:02d}") / f"frame_{index:05d}.png"  # subfolders, as a robot's logs have
        train_ids = to_five_classes(frame.train_ids)
        for folder in ("images", "labels"):
            (root / folder / split / rel).parent.mkdir(parents=True, exist_ok=True)
        write_png(root / "images" / split / rel, frame.image)
        write_png(root / "labels" / split / rel, np.where(train_ids == IGNORE_INDEX, UNLABELLED, values[train_ids]))
        paths.append(root / "images" / split / rel)
    return paths
