"""The ROS tools around the node: camera simulator, demo driver and node benchmark, run for real."""

from __future__ import annotations

import json
import os

import cv2
import numpy as np
import pytest

pytest.importorskip("rclpy")

import rclpy  # noqa: E402
from rclpy.context import Context  # noqa: E402
from rclpy.signals import SignalHandlerOptions  # noqa: E402
from ros_harness import ChildProcess, RosPeer, python_module, ros_env  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

from bialign_ros.bench.measure import node_ratio, ratio_cores_allow  # noqa: E402
from bialign_ros.bench.node_bench import one_camera_result  # noqa: E402
from bialign_ros.bench.node_harness import NodeRun, node_ready, node_settled  # noqa: E402
from bialign_ros.cli import camera_sim, node_benchmark, ros_demo  # noqa: E402
from bialign_ros.cli.output_collector import Arrival  # noqa: E402
from bialign_ros.node_interface import NODE_NAME, diagnostic_name  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def test_camera_sim_publishes_folder_images_with_camera_info(domain_id, tmp_path):
    rng = np.random.default_rng(0)
    for i in range(2):
        cv2.imwrite(str(tmp_path / f"frame_{i}.png"), rng.integers(0, 256, (48, 80, 3), dtype=np.uint8))
    peer = RosPeer(domain_id)
    images = peer.collect(Image, "/front/image")
    infos = peer.collect(CameraInfo, "/front/camera_info")
    sim = ChildProcess(python_module("bialign_ros.cli.camera_sim", "--folder", str(tmp_path), "--rate", "20",
                                     "--count", "100", "--encoding", "bgr8", "--ros-args", "-r", "__ns:=/front"),
                       ros_env(domain_id))
    try:
        assert sim.wait(60) == 0, sim.output
        assert "published 100 frames" in sim.output  # 5 s: discovery takes 1-3 s of it
        assert images.msgs, sim.output
        first = images.msgs[-1]
        assert (first.height, first.width, first.encoding) == (48, 80, "bgr8")
        assert first.header.frame_id == "camera_optical_frame"
        assert infos.msgs and infos.msgs[-1].k[0] == 80.0
        assert {bytes(m.data) for m in images.msgs} <= {cv2.imread(str(p)).tobytes()
                                                        for p in sorted(tmp_path.iterdir())}
    finally:
        peer.close()
        sim.stop()


def test_camera_sim_publishes_nothing_and_raises_nothing_once_its_context_is_shut_down(domain_id):
    # Ctrl-C: rclpy's signal handler shuts the context down, possibly while the timer's callback publishes
    args = camera_sim.build_parser().parse_args(["--width", "64", "--height", "32"])
    context = Context()
    rclpy.init(context=context, domain_id=domain_id, signal_handler_options=SignalHandlerOptions.NO)
    sim = camera_sim.CameraSim(args, camera_sim.load_frames(args), context=context)
    try:
        sim.publish_next()
        assert sim.published == 1
        context.shutdown()
        sim.publish_next()  # the publishers' context is gone: nothing published, no exception
        assert sim.published == 1
    finally:
        sim.destroy_node()
        context.try_shutdown()


def test_demo_drives_the_node_over_ros_and_writes_overlays_and_a_contact_sheet(untrained_weights, tmp_path,
                                                                               capsys, domain_id):
    code = ros_demo.main(["--weights", str(untrained_weights), "--out-dir", str(tmp_path), "--frames", "3",
                          "--domain-id", str(domain_id),
                          "--rate", "10", "--width", "160", "--height", "96", "--input-scale", "1.0"])
    out = capsys.readouterr().out
    assert code == 0, out + (tmp_path / "node.log").read_text()
    overlays = sorted((tmp_path / "overlays").glob("overlay_*.png"))
    assert len(overlays) == 3 and cv2.imread(str(overlays[0])).shape == (96, 160, 3)
    sheet = cv2.imread(str(tmp_path / "contact_sheet.png"))[:, :, ::-1]
    th = round(96 * ros_demo.THUMB_WIDTH / 160)  # a row per frame: overlay, confidence, grid (40 x 20 m)
    # frames before the node's first camera_info have no grid and are left out
    assert sheet.shape[0] in (th, 2 * th, 3 * th) and sheet.shape[1:] == (2 * ros_demo.THUMB_WIDTH + round(th / 2), 3)
    grid = sheet[:th, 2 * ros_demo.THUMB_WIDTH:]
    assert {0, 128, 235} >= set(np.unique(grid)) and (grid == 128).any()  # grid shades only, some unknown
    assert "input" in out and "Hz" in out and "latency" in out and "exit codes 0, 0" in out


def test_node_benchmark_reports_delivery_rates_and_latency(untrained_weights, tmp_path, capsys, domain_id):
    """With every output subscribed (--outputs all): the node computes and publishes each of them."""
    result_file = tmp_path / "bench.json"
    code = node_benchmark.main(["--weights", str(untrained_weights), "--width", "160", "--height", "96",
                                "--domain-id", str(domain_id), "--outputs", "all",
                                "--rate", "20", "--duration", "5", "--input-scale", "1.0", "--bare-frames", "3",
                                "--slices", "2",
                                "--json", str(result_file)])
    assert code == 0
    result = json.loads(result_file.read_text())
    # the run starts once the first labels came back (a compiled graph compiles on its first frame)
    published = 100 + result["first_labels_frames"]
    assert result["first_labels_frames"] >= 1
    assert result["published"] == published and result["node_received"] == published
    assert result["node_processed"] + result["node_dropped"] == published
    assert result["outputs"] == result["node_processed"] > 1
    assert result["subscribed"] == ["labels", *node_benchmark.SUBSCRIBABLE]
    assert result["bare_segmenter_work"] == {"edges": True, "confidence": True}
    received = result["outputs_received"]
    assert set(received) == set(node_benchmark.SUBSCRIBABLE) and min(received.values()) > 1, received
    assert result["ratio"] > 0 and result["latency_ms"]["p99"] >= result["latency_ms"]["p50"] > 0
    assert result["outputs"] == result["node_processed"]  # every frame is in the two windows of 2.5 s
    assert 0 < result["delivered_hz"] <= 30
    assert len(result["segmenter_hz_around"]) == 3  # before, between the two slices, after
    assert result["ratio"] == pytest.approx(node_ratio(result["delivered_hz"], result["segmenter_hz_around"]))
    printed = capsys.readouterr().out
    assert "ratio" in printed
    # the node's reports of the seconds after each window's first frame (one or two in each of 2.5 s)
    assert result["node_cpu_percent"] > 0 and result["node_threads_cpu_percent"]
    assert result["harness_cpu_percent"] > 0 and result["bare_segmenter_cpu_percent"] > 0
    assert result["ratio_cores_allow"] == pytest.approx(ratio_cores_allow(
        result["node_threads_cpu_percent"], result["node_cpu_percent"], result["harness_cpu_percent"],
        result["bare_segmenter_cpu_percent"], os.cpu_count()))
    # the node's own times per frame, from its last report: every processed frame was also published
    assert result["processing_mean_ms"] > 0 and result["publishing_mean_ms"] > 0
    assert "node per frame: inference thread" in printed


def test_node_benchmark_outputs_option_names_what_it_subscribes():
    assert node_benchmark.outputs_arg("labels") == ()
    assert node_benchmark.outputs_arg("points, color,labels") == ("color", "points")
    assert node_benchmark.outputs_arg("all") == node_benchmark.SUBSCRIBABLE
    with pytest.raises(SystemExit):
        node_benchmark.build_parser().parse_args(["--outputs", "colour"])


def test_tools_wait_until_the_node_diagnostics_say_active_and_subscribed():
    qos = "reliability=reliable, durability=volatile, history=keep_last, depth=5"
    node, cam0, cam1 = (diagnostic_name("bialign", cam) for cam in ("", "cam0", "cam1"))
    assert node_ready({node: {"state": "active", "subscription_qos": qos}}, [""], "reliable")
    assert not node_ready({node: {"state": "inactive", "subscription_qos": qos}}, [""], "reliable")
    assert not node_ready({node: {"state": "active", "subscription_qos": ""}}, [""], "reliable")
    assert not node_ready({node: {"state": "active", "subscription_qos": qos.replace("=reliable", "=best_effort")}},
                          [""], "reliable")
    assert not node_ready({}, [""], "reliable")
    several = {node: {"state": "active", "subscription_qos": f"cam0: {qos}"}, cam0: {"subscription_qos": qos},
               cam1: {"subscription_qos": ""}}
    assert not node_ready(several, ["cam0", "cam1"], "reliable")
    several[cam1] = {"subscription_qos": qos}
    assert node_ready(several, ["cam0", "cam1"], "reliable")


def test_outputs_are_drained_once_the_node_has_settled_every_published_frame():
    status = {"frames_received": 10.0, "frames_processed": 7.0, "frames_dropped": 2.0, "frames_failed": 0.0,
              "frames_rejected": 1.0}
    assert node_settled(status, published=10, arrived=7)
    assert not node_settled(status, published=11, arrived=7)  # a frame the node has not received yet
    assert not node_settled(status, published=10, arrived=6)  # a label image still on its way
    assert not node_settled({**status, "frames_processed": 6.0}, published=10, arrived=6)  # one in the model
    assert not node_settled(None, published=0, arrived=0)


def test_node_benchmark_compares_two_cameras_in_one_node_with_one_camera(untrained_weights, tmp_path, capsys,
                                                                         domain_id):
    result_file = tmp_path / "bench.json"
    code = node_benchmark.main(["--weights", str(untrained_weights), "--width", "160", "--height", "96",
                                "--domain-id", str(domain_id), "--cameras", "2", "--rate", "10",
                                "--duration", "2", "--input-scale", "1.0", "--bare-frames", "2",
                                "--json", str(result_file)])
    assert code == 0
    result = json.loads(result_file.read_text())
    one, multi = result["one_camera"], result["multi_camera"]
    sent = 20 + one["first_labels_frames"]  # the run starts once the first labels came back
    assert one["published"] == one["node_received"] == sent and one["outputs"] == one["node_processed"] > 1
    each = 20 + multi["first_labels_frames"]
    assert set(multi["per_camera"]) == {"cam0", "cam1"} and multi["published"] == 2 * each
    for cam in multi["per_camera"].values():
        assert cam["node_received"] == each and cam["node_processed"] + cam["node_dropped"] == each
        assert cam["outputs"] == cam["node_processed"] > 1
    assert multi["node_received"] == 2 * each and multi["outputs"] == multi["node_processed"]
    # Frames published at the same instants share forward passes.
    assert multi["batched_frames"] > 0 and multi["forward_passes"] < multi["node_processed"]
    assert multi["combined_rate_hz"] == pytest.approx(sum(c["output_median_rate_hz"]
                                                          for c in multi["per_camera"].values()))
    ratio = multi["combined_rate_hz"] / one["output_median_rate_hz"]
    assert result["combined_vs_one_camera"] == pytest.approx(ratio)
    assert result["bare_batch_frames_hz"] > 0 and result["bare_segmenter_hz"] > 0
    out = capsys.readouterr().out
    assert "2 cameras in one node" in out and "combined rate / one-camera rate" in out


def test_delivery_counts_the_frames_of_the_measured_window():
    second = 1_000_000_000
    published = [i * second // 2 for i in range(10)]  # 2 Hz from 0 to 4.5 s
    arrivals = [Arrival(t, 0.1, t / second + 0.1) for t in published if t != 4 * second]  # the frame of 4 s is lost
    delivery = NodeRun(published, {"": arrivals}, {}, seconds=2.0, rate_hz=2.0).delivery()
    # The window is the last 2 s of publications: stamps 3.0, 3.5, 4.0 and 4.5 s; three of them
    # arrived, at 3.1, 3.6 and 4.6 s: two intervals in 1.5 s.
    assert (delivery["published"], delivery["delivered"], delivery["dropped"]) == (4, 3, 1)
    assert delivery["delivered_hz"] == pytest.approx(2 / 1.5) and delivery["latency_p50_ms"] == pytest.approx(100.0)


def _slow_camera_reports(busy: float) -> tuple[list[int], list[tuple[int, float]]]:
    """A camera at 0.5 Hz (publications at 0, 2, ..., 18 s) and a node report every second (at 0.5 s,
    1.5 s, ...) of ``busy`` times the share of the second before it that follows the publication of 14 s:
    a node that idled until the first frame of the window (12 s, 18 s] and worked from then on."""
    second = 1_000_000_000
    published = [2 * i * second for i in range(10)]
    reports = [(k * second + second // 2, busy * min(1.0, max(0.0, k + 0.5 - 14.0))) for k in range(20)]
    return published, reports


def test_node_cpu_is_the_mean_of_the_node_reports_of_the_windows_working_seconds():
    """Only reports whose whole second follows the window's first publication count: the window (12 s,
    18 s] reaches back a camera period before it, when the node waited idle (reports of 0 and 75 %)."""
    published, cpu = _slow_camera_reports(150.0)
    run = NodeRun(published, {"": []}, {}, seconds=6.0, rate_hz=0.5, node_cpu=cpu)
    assert run.node_cpu_percent() == pytest.approx(150.0)  # the reports at 15.5, 16.5 and 17.5 s
    assert NodeRun(published, {"": []}, {}, seconds=6.0, rate_hz=0.5).node_cpu_percent() is None


def test_node_thread_cpu_is_the_mean_per_group_of_the_reports_of_the_windows_working_seconds():
    published, cpu = _slow_camera_reports(70.0)
    threads = [(stamp, {"inference": value, "middleware": 2.0}) for stamp, value in cpu]
    run = NodeRun(published, {"": []}, {}, seconds=6.0, rate_hz=0.5, node_threads=threads, harness_cpu=[10.0, 14.0])
    assert run.node_thread_cpu_percent() == pytest.approx({"inference": 70.0, "middleware": 2.0})
    assert run.harness_cpu_percent() == pytest.approx(12.0)
    empty = NodeRun(published, {"": []}, {}, seconds=6.0, rate_hz=0.5)
    assert empty.node_thread_cpu_percent() == {} and empty.harness_cpu_percent() is None


def test_delivered_rate_is_that_of_the_arrivals_not_of_the_windows_length():
    """A slow node still delivers a window's frames after the window ends: they must not count as
    delivered within it. Frames published at 2 Hz come out at 1 Hz, in two windows of 2 s."""
    second = 1_000_000_000
    published = [i * second // 2 for i in range(10)]
    arrivals = [Arrival(t, 0.0, float(i)) for i, t in enumerate(published)]
    run = NodeRun(published, {"": arrivals}, {}, seconds=4.0, rate_hz=2.0,
                  windows_ns=[(-1, 3 * second // 2), (5 * second // 2, 9 * second // 2)])
    delivery = run.delivery()
    assert (delivery["published"], delivery["delivered"]) == (8, 8)  # stamp 2.0 s lies between the windows
    assert delivery["delivered_hz"] == pytest.approx(1.0)  # not 8 frames / 4 s


def test_rates_and_latency_leave_out_the_frames_before_the_measured_window():
    """The first labels of a compiled graph wait seconds for it to compile, before the run starts:
    counted among the outputs, not in the latency or the rates."""
    second = 1_000_000_000
    published = [i * second // 2 for i in range(10)]  # 2 Hz from 0 to 4.5 s; the window: the last 2 s
    arrivals = [Arrival(0, 6.0, 6.0)] + [Arrival(t, 0.1, t / second + 0.1) for t in published[6:]]
    status = {"frames_received": 10, "frames_dropped": 5, "frames_processed": 5}
    run = NodeRun(published, {"": arrivals}, {diagnostic_name(NODE_NAME): status}, seconds=2.0, rate_hz=2.0,
                  outputs_received={"": {}})
    result = one_camera_result(run)
    assert result["outputs"] == 5 and result["first_labels_frames"] == 0
    assert result["latency_ms"]["max"] == pytest.approx(100.0) and result["latency_ms"]["mean"] == pytest.approx(100.0)
    assert result["output_median_rate_hz"] == pytest.approx(2.0)
