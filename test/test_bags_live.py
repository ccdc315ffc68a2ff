"""Live evaluation over ROS: bialign_bag_play, and the whole path with a real node.

Every participant (node, player, live evaluator) runs as its own process on a ROS_DOMAIN_ID of
the test's own, as a user would run them on a robot.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy")

from rclpy.serialization import serialize_message  # noqa: E402
from ros_harness import ChildProcess, RosPeer, next_domain_id, reliable, ros_env, start_node, wait_until  # noqa: E402
from rosbags.typesys import get_types_from_msg  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from bialign_ros.bags.io import BagReader, BagWriter  # noqa: E402
from bialign_ros.bags.live import LiveEvaluator  # noqa: E402
from bialign_ros.bags.live_score import LiveScorer  # noqa: E402
from bialign_ros.bags.make_bag import (  # noqa: E402
    DEFAULT_START_NS,
    find_frames,
    frame_stamp,
    make_bag,
    read_frame,
    write_frames,
)
from bialign_ros.bags.messages import IMAGE, image_message, message_labels, typestore  # noqa: E402
from bialign_ros.classes import CITYSCAPES_NAMES  # noqa: E402
from bialign_ros.codec import fill_image  # noqa: E402
from bialign_ros.metrics import ConfusionMatrix, summarize  # noqa: E402
from bialign_ros.segmenter import Segmenter  # noqa: E402
from bialign_ros.synthetic import FIVE_CLASS_NAMES, to_five_classes, write_cityscapes  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

NUM = len(CITYSCAPES_NAMES)
CUSTOM_TYPE = "bialign_test_msgs/msg/Note"


def python_module(module: str, *args: object) -> list[str]:
    return [sys.executable, "-m", module, *map(str, args)]


@pytest.fixture(scope="module")
def small_bag(tmp_path_factory) -> Path:
    """Six random 48x64 frames with labels at 10 Hz, and a topic of a type no Python package provides."""
    path = tmp_path_factory.mktemp("play") / "bag"
    store = typestore()
    if CUSTOM_TYPE not in store.types:
        store.register(get_types_from_msg("string text", CUSTOM_TYPE))
    rng = np.random.default_rng(0)
    with BagWriter(path, "sqlite3") as bag:
        for topic, msgtype in (("/camera/image", IMAGE), ("/camera/labels", IMAGE), ("/note", CUSTOM_TYPE)):
            bag.add_topic(topic, msgtype)
        for i in range(6):
            stamp = frame_stamp(i, 10.0)
            bag.write("/camera/image", stamp, image_message(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8),
                                                            "rgb8", stamp, "cam"))
            bag.write("/camera/labels", stamp, image_message(rng.integers(0, 19, (48, 64), dtype=np.uint8),
                                                             "mono8", stamp, "cam"))
        bag.write("/note", DEFAULT_START_NS, store.types[CUSTOM_TYPE](text="hello"))
    return path


def stamp_ns(msg: Image) -> int:
    return msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec


def test_bag_play_publishes_chosen_topics_with_scaled_timing_and_clock(small_bag):
    domain = next_domain_id()
    peer = RosPeer(domain)
    player = None
    try:
        images = peer.collect(Image, "/camera/image")
        labels = peer.collect(Image, "/camera/labels")
        clock = peer.collect(Clock, "/clock")
        player = ChildProcess(python_module("bialign_ros.cli.bag_play", small_bag,
                                            "--topics", "/camera/labels", "/note", "--rate", "0.5",
                                            "--clock", "50", "--wait-for-subscribers", "30"),
                              ros_env(domain))
        assert player.wait(120) == 0, player.output
        assert "skipping /note: no Python message package for bialign_test_msgs/msg/Note" in player.output
        assert "published 6 on /camera/labels" in player.output
        assert wait_until(lambda: len(labels.items) >= 6, 10), len(labels.items)
        stamps = [stamp_ns(m) for m in labels.msgs]
        assert stamps == [frame_stamp(i, 10.0) for i in range(6)]
        # 0.1 s between frames at half speed: 0.2 s (the first sample may wait for matching, so the median)
        assert np.median(np.diff([r.at for r in labels.items])) >= 0.15
        assert not images.items  # filtered out
        times = [m.clock.sec * 10**9 + m.clock.nanosec for m in clock.msgs]
        assert len(times) >= 20 and times == sorted(times)
        assert DEFAULT_START_NS <= times[0] and times[-1] <= frame_stamp(5, 10.0)
    finally:
        if player is not None:
            player.stop()
        peer.close()


def test_bag_play_loops_until_interrupted(small_bag):
    domain = next_domain_id()
    peer = RosPeer(domain)
    player = None
    try:
        labels = peer.collect(Image, "/camera/labels")
        player = ChildProcess(python_module("bialign_ros.cli.bag_play", small_bag, "--loop", "--rate", "4",
                                            "--topics", "/camera/labels", "--wait-for-subscribers", "30"),
                              ros_env(domain))
        assert labels.wait_for(lambda m: len(labels.items) > 13, 60) is not None, player.output
        assert player.interrupt() == 0, player.output
        assert "Traceback" not in player.output
        assert [stamp_ns(m) for m in labels.msgs[:12]] == 2 * [frame_stamp(i, 10.0) for i in range(6)]
    finally:
        if player is not None:
            player.stop()
        peer.close()


H, W, FRAMES = 96, 160, 6


@dataclass
class LiveRun:
    """What one run of node + bialign_bag_play + bialign_eval_live produced."""

    stamps: list[int]
    """The bag's frame stamps."""
    truths: dict[int, np.ndarray]
    """The bag's ground truth by stamp."""
    delivered: list[Image]
    """The node's label messages, as a fourth participant received them."""
    result: dict
    """bialign_eval_live's JSON output."""
    live_output: str
    """What bialign_eval_live printed."""
    node_exit: int


def run_live(weights: Path, work: Path, drop_frames: bool, rate: float,
             relabel: Callable[[np.ndarray], np.ndarray] | None = None, sim_time: bool = False) -> LiveRun:
    """Node, player and live evaluator on a synthetic bag; ``relabel`` turns its Cityscapes ground truth
    into the model's own train IDs; ``sim_time``: the player publishes /clock, the node uses it."""
    write_cityscapes(work / "cs", "val", FRAMES, H, W, seed=9, progress=False)
    bag = work / "bag"
    if relabel is None:
        summary = make_bag(work / "cs/leftImg8bit/val", bag, work / "cs/gtFine/val", progress=False,
                           storage="mcap")
    else:
        frames = (read_frame(f) for f in find_frames(work / "cs/leftImg8bit/val", work / "cs/gtFine/val"))
        summary = write_frames(bag, ((rgb, relabel(truth)) for rgb, truth in frames), storage="mcap")
    with BagReader(bag) as reader:
        truths = {m.log_time: message_labels(m.decode()) for m in reader.messages(["/camera/labels"])}
    domain = next_domain_id()
    processes: list[ChildProcess] = []
    peer = RosPeer(domain)
    try:
        delivered = peer.collect(Image, "/segmentation/labels", reliable(depth=50))
        node = start_node(domain, "-p", f"weights:={weights}", "-p", "device:=cpu",
                          "-p", f"drop_frames:={str(drop_frames).lower()}", "-p", "qos_reliability:=reliable",
                          "-p", f"qos_depth:={1 if drop_frames else 20}", "-r", "image:=/camera/image",
                          "-p", f"use_sim_time:={str(sim_time).lower()}")
        processes.append(node)
        live_json = work / "live.json"
        live = ChildProcess(python_module("bialign_ros.cli.eval_live", "--gt-topic", "/camera/labels",
                                          "--labels-topic", "/segmentation/labels", "--frames", FRAMES,
                                          "--idle-timeout", "30", "--out", live_json,
                                          "--report-period", "2"), ros_env(domain))  # progress in a failure's output
        processes.append(live)
        assert live.wait_for_output("listening:", 90), live.output  # the tool gives up after 60 s, saying why
        assert node.wait_for_output("subscribed to /camera/image", 120), node.output
        assert peer.wait_for_publishers("/segmentation/labels", 1, 60), node.output
        player = ChildProcess(python_module("bialign_ros.cli.bag_play", bag, "--rate", rate,
                                            "--wait-for-subscribers", "60", *(["--clock"] if sim_time else [])),
                              ros_env(domain))
        processes.append(player)
        assert player.wait(120) == 0, player.output
        assert live.wait(120) == 0, live.output
        result = json.loads(live_json.read_text())
        wait_until(lambda: len(delivered.items) >= result["frames"]["labels"], 10)
        return LiveRun(list(summary.stamps), truths, list(delivered.msgs), result, live.output, node.interrupt())
    finally:
        peer.close()
        for proc in processes:
            proc.stop()


def labels_of(msg: Image) -> np.ndarray:
    return np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.width)


def test_live_path_in_evaluation_mode_delivers_every_frame_with_the_bag_stamps(untrained_weights, tmp_path):
    """A replay with use_sim_time (the player's /clock) keeps every frame's bag stamp."""
    run = run_live(untrained_weights, tmp_path, drop_frames=False, rate=1.0, sim_time=True)
    assert [stamp_ns(m) for m in run.delivered] == run.stamps
    assert run.result["matched_stamps"] == run.stamps
    assert run.result["frames"]["matched"] == FRAMES and run.result["frames"]["dropped"] == 0
    # the live evaluator scored exactly the labels that went over the wire
    matrix = ConfusionMatrix(NUM)
    for m in run.delivered:
        matrix.update(run.truths[stamp_ns(m)], labels_of(m))
    expected = summarize(matrix.matrix, CITYSCAPES_NAMES)["miou"]
    assert run.result["miou"] == run.result["delivered"]["miou"] == expected
    # and those labels are the model's labels for the bag's frames
    seg = Segmenter.from_checkpoint(untrained_weights, device="cpu", precision="fp32", warmup=False)
    for frame, m in zip(find_frames(tmp_path / "cs/leftImg8bit/val"), run.delivered):
        np.testing.assert_array_equal(labels_of(m), seg.segment(read_frame(frame)[0]).labels)
    assert run.node_exit == 0


def test_live_path_scores_over_the_class_table_of_the_running_node(five_class_weights, tmp_path):
    run = run_live(five_class_weights, tmp_path, drop_frames=False, rate=1.0, relabel=to_five_classes)
    assert "class table of /bialign: road, sidewalk, vehicle, person, other" in run.live_output
    assert list(run.result["per_class_iou"]) == list(FIVE_CLASS_NAMES) and run.result["errors"] == []
    assert run.result["frames"]["matched"] == FRAMES
    matrix = ConfusionMatrix(len(FIVE_CLASS_NAMES))
    for m in run.delivered:
        matrix.update(run.truths[stamp_ns(m)], labels_of(m))
    assert run.result["miou"] == summarize(matrix.matrix, FIVE_CLASS_NAMES)["miou"]


def test_live_evaluator_takes_ground_truth_only_once_the_labels_publisher_matched():
    domain = next_domain_id()
    evaluator_peer, sender = RosPeer(domain, "evaluator", spin=False), RosPeer(domain, "sender")
    try:
        scorer = LiveScorer(CITYSCAPES_NAMES, tolerance_ns=0)
        truth = sender.publisher(Image, "/camera/labels", reliable())
        with pytest.raises(ValueError, match="subscription to /segmentation/labels matched none of its "
                                             "publishers within 0.5 s"):
            LiveEvaluator(evaluator_peer.node, scorer, "/segmentation/labels", "/camera/labels",
                          executor=evaluator_peer.executor, match_timeout=0.5)
        time.sleep(1.0)
        assert truth.get_subscription_count() == 0  # no ground truth taken without the labels
        labels = sender.publisher(Image, "/segmentation/labels", reliable())
        evaluator = LiveEvaluator(evaluator_peer.node, scorer, "/segmentation/labels", "/camera/labels",
                                  executor=evaluator_peer.executor, match_timeout=30)
        assert wait_until(lambda: truth.get_subscription_count() == 1, 10)
        assert wait_until(lambda: labels.get_subscription_count() >= 1, 10)
        assert evaluator.labels_topic == "/segmentation/labels"
    finally:
        evaluator_peer.close()
        sender.close()


def test_live_evaluator_reports_bad_ground_truth_messages_and_scores_the_good_ones():
    domain = next_domain_id()
    evaluator_peer, sender = RosPeer(domain, "evaluator"), RosPeer(domain, "sender")
    try:
        scorer = LiveScorer(CITYSCAPES_NAMES, tolerance_ns=0)
        evaluator = LiveEvaluator(evaluator_peer.node, scorer, "/segmentation/labels", "/camera/labels")
        pub = sender.publisher(Image, "/camera/labels", reliable())
        assert wait_until(lambda: pub.get_subscription_count() == 1, 10)
        rng = np.random.default_rng(1)
        truth = fill_image(Image(), rng.integers(0, NUM, (6, 8), dtype=np.uint8), "mono8")
        colour = fill_image(Image(), rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), "rgb8")
        pub.publish(serialize_message(truth)[:60])  # CDR cut inside the pixels
        pub.publish(colour)
        pub.publish(truth)
        assert wait_until(lambda: len(evaluator.errors) == 2 and scorer.truth_frames == 1, 10), evaluator.errors
        assert "Image message of 60 bytes ends inside its field data" in evaluator.errors[0]
        assert "label images must be mono8" in evaluator.errors[1] and "'rgb8'" in evaluator.errors[1]
    finally:
        evaluator_peer.close()
        sender.close()


def test_live_evaluator_without_weights_or_a_node_says_what_to_do():
    live = ChildProcess(python_module("bialign_ros.cli.eval_live", "--gt-topic", "/camera/labels",
                                      "--wait-for-node", 1), ros_env(next_domain_id()))
    try:
        assert live.wait(60) == 2, live.output
    finally:
        live.stop()
    assert ("no node publishes /segmentation/labels (waited 1 s): start the node first, or give --weights for "
            "the class table") in live.output


def test_live_path_latest_frame_wins_counts_the_drops_and_scores_the_held_labels(untrained_weights, tmp_path):
    # 170 frames per second: faster than any CPU runs the model, so the node drops frames
    run = run_live(untrained_weights, tmp_path, drop_frames=True, rate=10.0)
    delivered = [stamp_ns(m) for m in run.delivered]
    frames = run.result["frames"]
    assert set(delivered) <= set(run.stamps) and delivered == sorted(delivered)
    assert run.result["matched_stamps"] == delivered
    assert frames["matched"] + frames["dropped"] == FRAMES and frames["dropped"] >= 1
    assert sorted(run.result["dropped_stamps"]) == [s for s in run.stamps if s not in delivered]
    # real-time view: a dropped frame is scored with the newest labels delivered before it
    held = ConfusionMatrix(NUM)
    for stamp in run.stamps:
        earlier = [m for m in run.delivered if stamp_ns(m) <= stamp]
        if earlier:
            held.update(run.truths[stamp], labels_of(earlier[-1]))
    assert run.result["miou"] == summarize(held.matrix, CITYSCAPES_NAMES)["miou"]
    assert frames["dropped_before_first_labels"] == run.stamps.index(delivered[0])
