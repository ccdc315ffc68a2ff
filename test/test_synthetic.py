"""Tests of the procedural street-scene generator and its Cityscapes writer (CPU, offline, seeded)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from bialign_ros.classes import CITYSCAPES_CLASSES, CITYSCAPES_NAMES, IGNORE_INDEX, train_id_to_label_id_lut
from bialign_ros.cli.synth import main as synth_main
from bialign_ros.synthetic import FRAME_RATE, SceneFrame, render_scene, render_sequence, write_cityscapes
from bialign_ros.synthetic.cityscapes_writer import image_seed

H, W = 128, 256
COVERAGE_SEEDS = range(8)
# Trams ("train") are rare by design, as in Cityscapes; every other class shows up in a few scenes.
EXPECTED_CLASSES = set(CITYSCAPES_NAMES) - {"train"}


@pytest.fixture(scope="module")
def frames() -> list[SceneFrame]:
    return [render_scene(seed, H, W) for seed in COVERAGE_SEEDS]


def _read_rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGR2RGB)


def _read_raw(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


# --- frames ---------------------------------------------------------------------------------------


def test_frame_arrays_have_cityscapes_types(frames):
    valid = set(range(len(CITYSCAPES_CLASSES))) | {IGNORE_INDEX}
    for frame in frames:
        assert frame.image.shape == (H, W, 3) and frame.image.dtype == np.uint8
        assert frame.train_ids.shape == (H, W) and frame.train_ids.dtype == np.uint8
        assert frame.instance_ids.shape == (H, W) and frame.instance_ids.dtype == np.uint16
        assert set(np.unique(frame.train_ids).tolist()) <= valid


def test_same_seed_and_size_give_identical_arrays():
    a, b = render_scene(11, H, W), render_scene(11, H, W)
    assert np.array_equal(a.image, b.image)
    assert np.array_equal(a.train_ids, b.train_ids)
    assert np.array_equal(a.instance_ids, b.instance_ids)


def test_rendering_does_not_depend_on_process_state():
    """A fresh interpreter with another hash seed renders the same bytes."""
    code = (
        "import hashlib, sys; from bialign_ros.synthetic import render_scene; "
        "f = render_scene(5, 64, 128); "
        "sys.stdout.write(hashlib.sha256(f.image.tobytes() + f.train_ids.tobytes()).hexdigest())"
    )
    env = dict(os.environ, PYTHONHASHSEED="123")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    here = render_scene(5, 64, 128)
    assert out.stdout == hashlib.sha256(here.image.tobytes() + here.train_ids.tobytes()).hexdigest()


def test_different_seeds_give_different_scenes(frames):
    for a, b in zip(frames, frames[1:]):
        assert np.mean(a.train_ids != b.train_ids) > 0.1
        assert np.mean(np.abs(a.image.astype(int) - b.image.astype(int))) > 10


def test_every_class_of_a_street_appears_across_a_few_scenes(frames):
    present = set()
    for frame in frames:
        present |= {CITYSCAPES_NAMES[i] for i in np.unique(frame.train_ids) if i != IGNORE_INDEX}
    assert EXPECTED_CLASSES <= present, f"missing classes: {sorted(EXPECTED_CLASSES - present)}"


def test_class_layout_is_street_like(frames):
    """Road at the bottom, sky at the top, and most pixels labelled."""
    road, sky = CITYSCAPES_NAMES.index("road"), CITYSCAPES_NAMES.index("sky")
    rows = np.arange(H)
    for frame in frames:
        road_rows = rows[(frame.train_ids == road).any(axis=1)]
        sky_rows = rows[(frame.train_ids == sky).any(axis=1)]
        assert road_rows.size and np.median(road_rows) > H / 2
        if sky_rows.size:
            assert np.median(sky_rows) < H / 2
        assert np.mean(frame.train_ids == IGNORE_INDEX) < 0.12


def test_void_is_only_the_ego_vehicle_hood(frames):
    hooded = 0
    for frame in frames:
        void_rows = np.nonzero((frame.train_ids == IGNORE_INDEX).any(axis=1))[0]
        if void_rows.size:
            hooded += 1
            assert void_rows.min() >= 0.85 * H
            assert (frame.train_ids[-1] == IGNORE_INDEX).all()
    assert 0 < hooded < len(frames)


def test_label_ids_are_the_train_ids_mapped_through_the_class_table(frames):
    from cityscapesscripts.helpers.labels import trainId2label

    lut = train_id_to_label_id_lut()
    for frame in frames:
        assert np.array_equal(frame.label_ids, lut[frame.train_ids])
        assert (frame.label_ids[frame.train_ids == IGNORE_INDEX] == 0).all()
        for train_id in np.unique(frame.train_ids):
            if train_id != IGNORE_INDEX:
                label_ids = np.unique(frame.label_ids[frame.train_ids == train_id])
                assert label_ids.tolist() == [trainId2label[int(train_id)].id]


def test_color_image_uses_the_cityscapes_palette(frames):
    frame = frames[0]
    for train_id in np.unique(frame.train_ids):
        expected = (0, 0, 0) if train_id == IGNORE_INDEX else CITYSCAPES_CLASSES[train_id].color
        assert (frame.color[frame.train_ids == train_id] == expected).all()


def test_instance_ids_follow_the_cityscapes_encoding(frames):
    things = {
        CITYSCAPES_NAMES.index(n) for n in ("person", "rider", "car", "truck", "bus", "motorcycle", "bicycle")
    }
    instances_seen = 0
    for frame in frames:
        for train_id in np.unique(frame.train_ids):
            ids = frame.instance_ids[frame.train_ids == train_id]
            label_id = int(frame.label_ids[frame.train_ids == train_id][0])
            if train_id in things:
                assert (ids // 1000 == label_id).all()
                instances_seen += len(np.unique(ids))
            else:
                assert (ids == label_id).all()
    assert instances_seen > 20


def test_lane_markings_and_windows_keep_their_surface_class():
    """Bright paint lies inside road pixels and dark glass inside building pixels."""
    road, building = CITYSCAPES_NAMES.index("road"), CITYSCAPES_NAMES.index("building")
    found_paint = found_windows = 0
    for seed in range(4):
        frame = render_scene(seed, 256, 512)
        grey = cv2.cvtColor(frame.image, cv2.COLOR_RGB2GRAY).astype(float)
        road_px = grey[frame.train_ids == road]
        found_paint += np.mean(road_px > np.median(road_px) + 60) > 0.003
        facade = grey[frame.train_ids == building]
        found_windows += facade.size > 0 and np.mean(facade < np.median(facade) - 40) > 0.01
    assert found_paint >= 3 and found_windows >= 3


# --- labels versus image --------------------------------------------------------------------------


def _label_boundaries(labels: np.ndarray) -> np.ndarray:
    edge = np.zeros(labels.shape, dtype=bool)
    edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    edge[1:, :] |= labels[1:, :] != labels[:-1, :]
    return edge


def test_label_boundaries_coincide_with_image_edges(frames):
    ratios, shifted = [], []
    for frame in frames:
        grey = cv2.cvtColor(frame.image, cv2.COLOR_RGB2GRAY).astype(np.float32)
        grad = np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))
        edges = _label_boundaries(frame.train_ids)
        ratios.append(grad[edges].mean() / grad[~edges].mean())
        moved = _label_boundaries(np.roll(frame.train_ids, (3, 3), axis=(0, 1)))
        shifted.append(grad[moved].mean() / grad[~moved].mean())
    assert np.median(ratios) > 2.0
    # The alignment is exact: boundaries moved by 3 pixels match the image clearly worse.
    assert np.median(ratios) > 1.3 * np.median(shifted)


def test_classes_differ_in_colour_but_colour_alone_does_not_separate_them(frames):
    pixels = np.concatenate([f.image.reshape(-1, 3) for f in frames]).astype(np.float64)
    labels = np.concatenate([f.train_ids.ravel() for f in frames])
    keep = labels != IGNORE_INDEX
    pixels, labels = pixels[keep], labels[keep]
    classes = np.unique(labels)
    means = np.stack([pixels[labels == c].mean(axis=0) for c in classes])
    sky, vegetation = CITYSCAPES_NAMES.index("sky"), CITYSCAPES_NAMES.index("vegetation")
    sky_mean, veg_mean = means[classes == sky][0], means[classes == vegetation][0]
    assert sky_mean[2] > veg_mean[2] + 40  # sky is bluer and brighter than foliage on average

    nearest = np.argmin(((pixels[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    accuracy = np.mean(classes[nearest] == labels)
    majority = np.bincount(labels).max() / labels.size
    assert accuracy < 0.6, f"nearest-class-mean colour accuracy {accuracy:.2f} is too high"
    assert accuracy < majority + 0.2


# --- sequences ------------------------------------------------------------------------------------


def test_first_sequence_frame_is_the_single_scene():
    first = next(render_sequence(4, 3, H, W))
    single = render_scene(4, H, W)
    assert np.array_equal(first.image, single.image) and np.array_equal(first.train_ids, single.train_ids)


def test_sequences_change_smoothly_while_driving_forward():
    seq = list(render_sequence(2, 12, H, W))
    other = render_scene(3, H, W)

    def image_diff(a, b):
        return np.mean(np.abs(a.image.astype(int) - b.image.astype(int)))

    steps = [image_diff(a, b) for a, b in zip(seq, seq[1:])]
    label_steps = [np.mean(a.train_ids != b.train_ids) for a, b in zip(seq, seq[1:])]
    assert max(steps) < 0.5 * image_diff(seq[0], other)
    assert max(label_steps) < 0.15
    # The camera moves: the scene drifts further from the first frame over time.
    assert np.mean(seq[0].train_ids != seq[-1].train_ids) > np.mean(label_steps)
    assert FRAME_RATE == pytest.approx(17.0)


def test_sequence_frames_are_deterministic_and_independent_of_history():
    a = list(render_sequence(8, 6, 64, 128))
    b = list(render_sequence(8, 6, 64, 128))
    assert all(np.array_equal(x.image, y.image) for x, y in zip(a, b))
    assert len(list(render_sequence(8, 0, 64, 128))) == 0


# --- argument checks ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"seed": -1}, "seed must be non-negative"), ({"seed": 0, "height": 8}, "height must be at least")],
)
def test_invalid_render_arguments_name_the_problem(kwargs, message):
    with pytest.raises(ValueError, match=message):
        render_scene(**kwargs)


def test_non_integer_seed_is_rejected():
    with pytest.raises(TypeError, match="seed must be an integer"):
        render_scene(1.5, H, W)


# --- Cityscapes layout ----------------------------------------------------------------------------


def test_written_dataset_has_exact_cityscapes_layout_and_round_trips(tmp_path):
    from cityscapesscripts.helpers.csHelpers import getCsFileInfo

    train = write_cityscapes(tmp_path, "train", num_images=2, height=64, width=128, seed=3, progress=False)
    val = write_cityscapes(tmp_path, "val", num_images=2, height=64, width=128, seed=3, progress=False)
    files = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    expected = []
    for split, city in (("train", "synthtown"), ("val", "synthville")):
        for i in range(2):
            stem = f"{city}_{i:06d}_000019"
            expected.append(f"leftImg8bit/{split}/{city}/{stem}_leftImg8bit.png")
            for kind in ("color", "instanceIds", "labelIds", "labelTrainIds"):
                expected.append(f"gtFine/{split}/{city}/{stem}_gtFine_{kind}.png")
    assert files == sorted(expected)
    assert [p.name for p in train] == [
        "synthtown_000000_000019_leftImg8bit.png",
        "synthtown_000001_000019_leftImg8bit.png",
    ]

    info = getCsFileInfo(str(val[1]))
    assert (info.city, info.sequenceNb, info.frameNb, info.type) == (
        "synthville",
        "000001",
        "000019",
        "leftImg8bit",
    )

    frame = render_scene(image_seed(3, "val", 1), 64, 128)
    gt = tmp_path / "gtFine" / "val" / "synthville"
    stem = "synthville_000001_000019"
    assert np.array_equal(_read_rgb(val[1]), frame.image)
    assert np.array_equal(_read_raw(gt / f"{stem}_gtFine_labelIds.png"), frame.label_ids)
    assert np.array_equal(_read_raw(gt / f"{stem}_gtFine_labelTrainIds.png"), frame.train_ids)
    instance = _read_raw(gt / f"{stem}_gtFine_instanceIds.png")
    assert instance.dtype == np.uint16 and np.array_equal(instance, frame.instance_ids)
    color = cv2.cvtColor(_read_raw(gt / f"{stem}_gtFine_color.png"), cv2.COLOR_BGRA2RGBA)
    assert color.shape == (64, 128, 4) and (color[..., 3] == 255).all()
    assert np.array_equal(color[..., :3], frame.color)

    # The same seed gives different scenes in different splits.
    assert not np.array_equal(_read_rgb(train[0]), _read_rgb(val[0]))


def test_official_evaluator_reads_the_ground_truth(tmp_path):
    """The evaluator's own glob finds the labels; scoring them against themselves gives IoU 1."""
    import glob

    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as cs_eval
    from cityscapesscripts.helpers.labels import labels as cs_labels

    write_cityscapes(tmp_path, "val", num_images=3, height=64, width=128, seed=1, progress=False)
    gt = sorted(glob.glob(str(tmp_path / "gtFine" / "val" / "*" / "*_gtFine_labelIds.png")))
    assert len(gt) == 3

    args = cs_eval.CArgs()
    for name, value in vars(cs_eval.args).items():
        setattr(args, name, value)
    args.evalLabels = [label.id for label in cs_labels if label.id >= 0]
    args.evalInstLevelScore = False
    args.JSONOutput = False
    args.quiet = True
    result = cs_eval.evaluateImgLists(gt, gt, args)
    scores = [s for s in result["classScores"].values() if not np.isnan(s)]
    assert len(scores) >= 8 and all(s == pytest.approx(1.0) for s in scores)


def test_sequence_mode_numbers_frames_within_sequences(tmp_path):
    paths = write_cityscapes(
        tmp_path, "train", num_images=3, height=32, width=64, sequence=True, progress=False
    )
    assert [p.name for p in paths] == [f"synthtown_000000_{i:06d}_leftImg8bit.png" for i in range(3)]
    seq = list(render_sequence(image_seed(0, "train", 0), 3, 32, 64))
    assert np.array_equal(_read_rgb(paths[2]), seq[2].image)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"split": "../x"}, "split must be"),
        ({"city": "new_york"}, "city must be"),
        ({"num_images": -1}, "num_images must be non-negative"),
    ],
)
def test_invalid_writer_arguments_name_the_problem(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        write_cityscapes(tmp_path, progress=False, height=32, width=64, **kwargs)


# --- command line ---------------------------------------------------------------------------------


def test_cli_writes_a_dataset(tmp_path, capsys):
    code = synth_main(
        [
            "--out",
            str(tmp_path),
            "--split",
            "val",
            "--num",
            "2",
            "--height",
            "32",
            "--width",
            "64",
            "--seed",
            "4",
            "--quiet",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "wrote 2 images" in out and str(tmp_path) in out
    images = sorted((tmp_path / "leftImg8bit" / "val" / "synthville").glob("*_leftImg8bit.png"))
    assert len(images) == 2
    assert _read_rgb(images[0]).shape == (32, 64, 3)
    assert len(list((tmp_path / "gtFine" / "val" / "synthville").glob("*_gtFine_labelIds.png"))) == 2


def test_cli_sequence_flag(tmp_path):
    assert (
        synth_main(
            ["--out", str(tmp_path), "--num", "2", "--height", "32", "--width", "64", "--sequence", "--quiet"]
        )
        == 0
    )
    names = sorted(p.name for p in (tmp_path / "leftImg8bit" / "train" / "synthtown").iterdir())
    assert names == ["synthtown_000000_000000_leftImg8bit.png", "synthtown_000000_000001_leftImg8bit.png"]


def test_cli_reports_bad_arguments(tmp_path, capsys):
    assert synth_main(["--out", str(tmp_path), "--num", "1", "--city", "Bad_City", "--quiet"]) == 2
    assert "city must be" in capsys.readouterr().err


def test_console_script_runs(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bialign_ros.cli.synth",
            "--out",
            str(tmp_path),
            "--num",
            "1",
            "--height",
            "32",
            "--width",
            "64",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "wrote 1 images" in result.stdout


# --- speed and learnability -----------------------------------------------------------------------


def test_full_size_frame_renders_quickly():
    render_scene(0, 512, 1024)
    times = []
    for seed in (1, 2, 3):
        start = time.perf_counter()
        render_scene(seed, 512, 1024)
        times.append(time.perf_counter() - start)
    # Typically well under 0.1 s; the bound leaves room for a busy shared machine.
    assert np.median(times) < 1.0


@pytest.mark.slow
def test_a_small_cnn_learns_what_colour_alone_cannot():
    torch = pytest.importorskip("torch")
    nn, functional = torch.nn, torch.nn.functional
    torch.manual_seed(0)
    h, w = 48, 96
    train = [render_scene(seed, h, w) for seed in range(40)]
    val = [render_scene(1000 + seed, h, w) for seed in range(10)]

    def tensors(frames):
        x = torch.from_numpy(np.stack([f.image for f in frames])).permute(0, 3, 1, 2).float() / 255.0
        y = torch.from_numpy(np.stack([f.train_ids for f in frames]).astype(np.int64))
        return (x - 0.45) / 0.25, y

    x_train, y_train = tensors(train)
    x_val, y_val = tensors(val)

    def block(cin, cout, stride=1):
        return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())

    net = nn.Sequential(block(3, 16, 2), block(16, 32, 2), block(32, 32), block(32, 32), nn.Conv2d(32, 19, 1))
    optimizer = torch.optim.Adam(net.parameters(), 5e-3)
    generator = torch.Generator().manual_seed(0)

    def predict(x):
        return functional.interpolate(net(x), size=(h, w), mode="bilinear", align_corners=False)

    # One thread: on a shared two-core machine this is faster and steadier than two.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(150):
            batch = torch.randint(0, len(x_train), (8,), generator=generator)
            loss = functional.cross_entropy(
                predict(x_train[batch]), y_train[batch], ignore_index=IGNORE_INDEX
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
    net.eval()
    with torch.no_grad():
        cnn = predict(x_val).argmax(1)

    pixels = x_train.permute(0, 2, 3, 1).reshape(-1, 3)
    labels = y_train.reshape(-1)
    means = torch.stack(
        [pixels[labels == c].mean(0) if (labels == c).any() else torch.full((3,), 1e6) for c in range(19)]
    )
    colour_only = torch.cdist(x_val.permute(0, 2, 3, 1).reshape(-1, 3), means).argmin(1).reshape(y_val.shape)

    def miou(pred):
        valid = y_val != IGNORE_INDEX
        conf = torch.bincount(y_val[valid] * 19 + pred[valid], minlength=361).reshape(19, 19).double()
        iou = conf.diag() / (conf.sum(0) + conf.sum(1) - conf.diag()).clamp(min=1)
        return iou[conf.sum(1) > 0].mean().item()

    chance = miou(torch.zeros_like(y_val))  # everything predicted as the most common class, road
    assert miou(cnn) > 5 * chance
    assert miou(cnn) > 2 * miou(colour_only)
