"""Bags on disk: making them from folders, reading them back, damaged files, stamp matching, rclpy types."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from bialign_ros.bags.io import BagError, BagReader, BagWriter, TopicNotFoundError
from bialign_ros.bags.make_bag import DEFAULT_START_NS, find_frames, read_frame
from bialign_ros.bags.matching import StampMatcher
from bialign_ros.bags.messages import (
    CAMERA_INFO,
    COMPRESSED_IMAGE,
    IMAGE,
    image_message,
    message_labels,
    stamp_to_ns,
    typestore,
)
from bialign_ros.cli import make_bag as make_bag_cli
from bialign_ros.codec import message_to_rgb8
from bialign_ros.synthetic import write_cityscapes

H, W, N = 64, 96, 6
STORAGES = ["sqlite3", "mcap"]


@pytest.fixture(scope="module")
def cityscapes(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cityscapes")
    write_cityscapes(root, "val", N, H, W, seed=3, progress=False)
    return root


def read_all(path: Path, topics: list[str] | None = None) -> tuple[dict, list, str | None]:
    with BagReader(path) as bag:
        messages = [(m.topic, m.log_time, m.decode()) for m in bag.messages(topics)]
        return bag.topics, messages, bag.damage


@pytest.mark.parametrize("storage", STORAGES)
def test_make_bag_from_cityscapes_folder_reads_back_frames_labels_and_stamps(cityscapes, tmp_path, storage):
    out = tmp_path / "bag"
    code = make_bag_cli.main(["--images", str(cityscapes / "leftImg8bit/val"),
                              "--labels", str(cityscapes / "gtFine/val"), "--out", str(out), "--rate", "10",
                              "--storage", storage, "--no-progress"])
    assert code == 0
    meta = yaml.safe_load((out / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["version"] == 9 and meta["storage_identifier"] == storage
    topics, messages, damage = read_all(out)
    assert damage is None
    assert {t: (i.msgtype, i.count) for t, i in topics.items()} == {"/camera/image": (IMAGE, N),
                                                                    "/camera/labels": (IMAGE, N)}
    images = sorted((cityscapes / "leftImg8bit/val").rglob("*_leftImg8bit.png"))
    frames = [(log, msg) for topic, log, msg in messages if topic == "/camera/image"]
    truths = [(log, msg) for topic, log, msg in messages if topic == "/camera/labels"]
    expected_stamps = [DEFAULT_START_NS + i * 100_000_000 for i in range(N)]
    assert [log for log, _ in frames] == expected_stamps
    assert [stamp_to_ns(m.header.stamp) for _, m in frames] == expected_stamps
    assert [stamp_to_ns(m.header.stamp) for _, m in truths] == expected_stamps
    for path, (_, frame), (_, truth) in zip(images, frames, truths):
        assert frame.encoding == "rgb8"
        np.testing.assert_array_equal(message_to_rgb8(frame), cv2.imread(str(path))[:, :, ::-1])
        train_ids_file = (cityscapes / "gtFine/val" / path.parent.name
                          / path.name.replace("_leftImg8bit.png", "_gtFine_labelTrainIds.png"))
        # the bag's labels come from the label-ID files through the official table
        expected = cv2.imread(str(train_ids_file), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(message_labels(truth), expected)


def test_make_bag_compressed_frames_without_labels_and_existing_output(cityscapes, tmp_path, capsys):
    labels = tmp_path / "gt"
    shutil.copytree(cityscapes / "gtFine/val", labels)
    missing = sorted(labels.rglob("*_labelIds.png"))[1]
    missing.unlink()
    Path(str(missing).replace("_labelIds", "_labelTrainIds")).unlink()
    out = tmp_path / "bag"
    args = ["--images", str(cityscapes / "leftImg8bit/val"), "--labels", str(labels), "--out", str(out),
            "--format", "jpeg", "--topic", "/cam/image", "--no-progress"]
    assert make_bag_cli.main(args) == 0
    topics, messages, _ = read_all(out)
    assert topics["/cam/image/compressed"].msgtype == COMPRESSED_IMAGE
    assert topics["/cam/image/compressed"].count == N and topics["/camera/labels"].count == N - 1
    frame = next(m for t, _, m in messages if t == "/cam/image/compressed")
    assert message_to_rgb8(frame).shape == (H, W, 3)
    assert make_bag_cli.main(args) == 2
    assert "exists already" in capsys.readouterr().err


def test_make_bag_stops_on_a_bad_label_image_and_leaves_no_partial_bag(cityscapes, tmp_path, capsys):
    labels = tmp_path / "gt"
    shutil.copytree(cityscapes / "gtFine/val", labels)
    bad = sorted(labels.rglob("*_labelIds.png"))[2]
    cv2.imwrite(str(bad), np.zeros((H, W + 1), np.uint8))
    out = tmp_path / "bag"
    assert make_bag_cli.main(["--images", str(cityscapes / "leftImg8bit/val"), "--labels", str(labels),
                              "--out", str(out), "--no-progress"]) == 2
    assert f"label image {bad} is {W + 1}x{H} but frame" in capsys.readouterr().err
    assert not out.exists()


def test_find_frames_plain_folder_pairs_train_id_pngs_by_name(tmp_path):
    (tmp_path / "img/a").mkdir(parents=True)
    (tmp_path / "lab/a").mkdir(parents=True)
    rgb = np.zeros((8, 8, 3), np.uint8)
    for name in ("x", "y"):
        cv2.imwrite(str(tmp_path / f"img/a/{name}.jpg"), rgb)
    cv2.imwrite(str(tmp_path / "lab/a/x.png"), np.full((8, 8), 7, np.uint8))
    frames = find_frames(tmp_path / "img", tmp_path / "lab")
    assert [(f.image.name, f.label and f.label.name) for f in frames] == [("x.jpg", "x.png"), ("y.jpg", None)]
    _, ids = read_frame(frames[0])
    assert ids is not None and (ids == 7).all()
    (tmp_path / "none").mkdir()
    with pytest.raises(ValueError, match="no frames in"):
        find_frames(tmp_path / "none")


def write_bag(path: Path, storage: str, frames: int = 30, size: tuple[int, int] = (48, 64)) -> list[int]:
    rng = np.random.default_rng(0)
    stamps = [DEFAULT_START_NS + i * 50_000_000 for i in range(frames)]
    with BagWriter(path, storage) as bag:
        bag.add_topic("/cam", IMAGE)
        for stamp in stamps:
            bag.write("/cam", stamp, image_message(rng.integers(0, 255, (*size, 3), dtype=np.uint8), "rgb8",
                                                    stamp, "cam"))
    return stamps


def storage_file(bag: Path) -> Path:
    return next(p for p in bag.iterdir() if p.suffix in (".mcap", ".db3"))


@pytest.mark.parametrize("storage", STORAGES)
def test_truncated_bag_reads_everything_before_the_cut_and_names_the_file(tmp_path, storage):
    bag = tmp_path / "bag"
    stamps = write_bag(bag, storage)
    data = storage_file(bag)
    with data.open("r+b") as f:
        f.truncate(data.stat().st_size * 6 // 10)
    topics, messages, damage = read_all(bag)
    assert damage is not None and str(data) in damage
    read = [stamp_to_ns(m.header.stamp) for _, _, m in messages]
    # everything that survived, in order, and most of the part of the file that is left
    assert read == stamps[:len(read)] and len(stamps) // 3 < len(read) < len(stamps)
    assert all(m.height == 48 and len(m.data) == 48 * 64 * 3 for _, _, m in messages)


@pytest.mark.parametrize("storage", STORAGES)
def test_bag_without_metadata_or_with_fewer_messages_than_listed(tmp_path, storage):
    bag = tmp_path / "bag"
    stamps = write_bag(bag, storage, frames=5)
    meta_path = bag / "metadata.yaml"
    meta = yaml.safe_load(meta_path.read_text())
    meta_path.unlink()
    with BagReader(bag) as reader:  # a recorder killed before writing metadata.yaml
        assert any("no metadata.yaml" in note for note in reader.notes)
        assert [m.log_time for m in reader.messages()] == stamps and reader.damage is None
    info = meta["rosbag2_bagfile_information"]
    info["message_count"] = info["topics_with_message_count"][0]["message_count"] = 9
    meta_path.write_text(yaml.safe_dump(meta))
    _, messages, damage = read_all(bag)
    assert len(messages) == 5
    assert damage is not None and "ends early" in damage and "/cam: 5 of 9" in damage


def test_reader_errors_name_the_problem(tmp_path):
    with pytest.raises(BagError, match="does not exist"):
        BagReader(tmp_path / "none")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BagError, match="not a rosbag2 bag"):
        BagReader(tmp_path / "empty")
    bag = tmp_path / "bag"
    write_bag(bag, "mcap", frames=1)
    with BagReader(bag) as reader:
        listed = r"'/image' is not in bag .*/cam \[sensor_msgs/msg/Image, 1 msgs\]"
        with pytest.raises(TopicNotFoundError, match=listed):
            reader.topic("/image")
        wrong = "has type sensor_msgs/msg/Image; expected sensor_msgs/msg/CameraInfo"
        with pytest.raises(BagError, match=wrong):
            reader.topic("/cam", (CAMERA_INFO,))
    with pytest.raises(BagError, match="exists already"):
        BagWriter(bag)
    with pytest.raises(BagError, match="unknown storage 'rosbag1'"):
        BagWriter(tmp_path / "other", "rosbag1")


def test_bare_storage_file_opens_as_a_bag(tmp_path):
    bag = tmp_path / "bag"
    stamps = write_bag(bag, "mcap", frames=3)
    _, messages, damage = read_all(storage_file(bag))
    assert [log for _, log, _ in messages] == stamps and damage is None


def test_bag_type_hashes_match_the_installed_ros_definitions(tmp_path):
    """The hashes written are those ROS 2 (Jazzy and Kilted share them) computes for its types."""
    bag = tmp_path / "bag"
    with BagWriter(bag, "sqlite3") as writer:
        for topic, msgtype in (("/a", IMAGE), ("/b", COMPRESSED_IMAGE), ("/c", CAMERA_INFO)):
            writer.add_topic(topic, msgtype)
    meta = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    checked = 0
    for entry in meta["topics_with_message_count"]:
        pkg, _, name = entry["topic_metadata"]["type"].split("/")
        described = Path(sys.prefix) / "share" / pkg / "msg" / f"{name}.json"
        if not described.is_file():
            continue
        hashes = json.loads(described.read_text())["type_hashes"]
        assert entry["topic_metadata"]["type_description_hash"] == hashes[0]["hash_string"]
        checked += 1
    if not checked:
        pytest.skip(f"no ROS message descriptions under {sys.prefix}/share")


def test_stamp_matcher_pairs_nearest_within_tolerance_in_either_arrival_order():
    ms = 1_000_000
    matcher: StampMatcher[str, str] = StampMatcher(2 * ms)
    pairs = []
    pairs += matcher.add_truth(0, "g0")
    pairs += matcher.add_frame(1 * ms, "f0")           # truth 1 ms early: still a pair
    pairs += matcher.add_frame(100 * ms, "f1")         # its truth comes later
    pairs += matcher.add_frame(200 * ms, "f2")         # no truth at all
    pairs += matcher.add_truth(101 * ms, "g1")
    pairs += matcher.add_truth(150 * ms, "g_orphan")   # truth without a frame
    pairs += matcher.add_truth(199 * ms, "g2a")
    pairs += matcher.add_truth(200 * ms, "g2b")        # nearer to f2 than g2a
    pairs += matcher.add_frame(300 * ms, "f3")
    pairs += matcher.finish()
    got = [(p.frame, p.truth) for p in pairs]
    assert got == [("f0", "g0"), ("f1", "g1"), (None, "g_orphan"), ("f2", "g2b"), (None, "g2a"), ("f3", None)]
    assert matcher.pending == 0
    with pytest.raises(ValueError, match="tolerance"):
        StampMatcher(-1)


def test_stamp_matcher_holds_only_what_can_still_match():
    matcher: StampMatcher[int, int] = StampMatcher(0)
    for i in range(100):
        matcher.add_frame(i * 10, i)
        matcher.add_truth(i * 10, i)
    assert matcher.pending <= 2


def test_bag_bytes_are_the_rclpy_messages():
    pytest.importorskip("sensor_msgs")
    from rclpy.serialization import serialize_message

    from bialign_ros.bags.messages import compressed_message
    from bialign_ros.bags.to_rclpy import rclpy_class, to_rclpy

    types = typestore().types
    pixels = np.arange(6 * 8 * 3, dtype=np.uint8).reshape(6, 8, 3)
    image = image_message(pixels, "rgb8", 1_700_000_000_123_456_789, "c")
    roi = types["sensor_msgs/msg/RegionOfInterest"](x_offset=1, y_offset=2, height=3, width=4,
                                                    do_rectify=True)
    info = types[CAMERA_INFO](
        header=image.header, height=6, width=8, distortion_model="plumb_bob",
        d=np.array([0.1, -0.2, 0, 0, 0.3]), k=np.arange(9.0), r=np.eye(3).ravel(), p=np.arange(12.0),
        binning_x=1, binning_y=2, roi=roi)
    compressed = compressed_message(np.zeros((8, 8, 3), np.uint8), "png", 5, "c")
    clock = types["rosgraph_msgs/msg/Clock"](clock=types["builtin_interfaces/msg/Time"](sec=3, nanosec=4))
    for msg in (image, info, compressed, clock):
        # the bytes a bag written here holds, read by rclpy as its own message class
        data = bytes(typestore().serialize_cdr(msg, msg.__msgtype__))
        converted = to_rclpy(data, rclpy_class(msg.__msgtype__))
        assert type(converted).__name__ == msg.__msgtype__.rsplit("/", 1)[1]
        # rclpy's serialisation of it, read back by rosbags, gives the original message
        back = typestore().deserialize_cdr(bytes(serialize_message(converted)), msg.__msgtype__)
        for field in msg.__dataclass_fields__:
            a, b = getattr(msg, field), getattr(back, field)
            assert (np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b), field
    assert bytes(to_rclpy(bytes(typestore().serialize_cdr(image, IMAGE)), rclpy_class(IMAGE)).data) == pixels.tobytes()
    with pytest.raises(ValueError, match="not a serialised sensor_msgs.msg._image.Image"):
        to_rclpy(bytes(typestore().serialize_cdr(clock, "rosgraph_msgs/msg/Clock")), rclpy_class(IMAGE))
    assert rclpy_class("no_such_msgs/msg/Thing") is None
