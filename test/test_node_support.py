"""Rate and latency statistics, the diagnostics report, QoS matching and the transport profile."""

from __future__ import annotations

import math
import os
import threading

import pytest

from bialign_ros.node_report import ERROR, OK, THREAD_GROUPS, WARN, NodeReport, parse_key_values, thread_group
from bialign_ros.rate_stats import CpuMeter, LatencyStats, RateMeter, ThreadCpuMeter, thread_cpu_seconds
from bialign_ros.transport import (
    LEGACY_PROFILE_ENV,
    PROFILE_ENV,
    profile_env_var,
    transport_profile_path,
    use_transport_profile,
)


def test_rate_meter_measures_events_per_second_and_decays_to_zero():
    meter = RateMeter(window=2.0, clock=lambda: 0.0)
    for i in range(31):
        meter.tick(10.0 + i / 30)
    assert meter.rate(11.0) == pytest.approx(30.0)
    assert meter.total == 31
    assert meter.rate(12.5) == pytest.approx(30.0)  # the last second of events is still in the window
    assert meter.rate(20.0) == 0.0


def test_rate_meter_needs_two_events():
    meter = RateMeter(window=5.0)
    assert meter.rate() == 0.0
    meter.tick(1.0)
    assert meter.rate(1.0) == 0.0
    with pytest.raises(ValueError, match="window"):
        RateMeter(window=0)


def test_cpu_meter_gives_the_cpu_time_per_wall_second_since_the_previous_reading():
    wall, cpu = iter([10.0, 11.0, 13.0, 13.0]), iter([5.0, 6.8, 7.8, 7.8])
    meter = CpuMeter(clock=lambda: next(wall), cpu=lambda: next(cpu))
    assert meter.percent() == pytest.approx(180.0)  # two cores, most of the time
    assert meter.percent() == pytest.approx(50.0)
    assert math.isnan(meter.percent())  # no time has passed


def test_cpu_meter_counts_the_work_of_every_thread():
    meter = CpuMeter()
    burn = [threading.Thread(target=lambda: sum(i * i for i in range(2_000_000))) for _ in range(2)]
    for thread in burn:
        thread.start()
    for thread in burn:
        thread.join()
    assert meter.percent() > 50.0


def test_thread_cpu_seconds_reads_every_task_of_a_process(tmp_path):
    ticks = os.sysconf("SC_CLK_TCK")
    for tid, name, utime, stime in ((101, "python", 3 * ticks, ticks), (102, "dds.shm.1 (x)", ticks, 0)):
        (tmp_path / str(tid)).mkdir()
        fields = ["S"] + ["0"] * 10 + [str(utime), str(stime)] + ["0"] * 30  # state, then 14th and 15th
        (tmp_path / str(tid) / "stat").write_text(f"{tid} ({name}) {' '.join(fields)}\n")
    (tmp_path / "103").mkdir()  # a thread that ended while the directory was read: no stat
    assert thread_cpu_seconds(tmp_path) == {101: ("python", 4.0), 102: ("dds.shm.1 (x)", 1.0)}
    assert thread_cpu_seconds(tmp_path / "missing") == {}
    own = thread_cpu_seconds()
    assert threading.get_native_id() in own or not own  # this process's own threads, where /proc has them


def test_thread_cpu_meter_gives_each_groups_cpu_per_wall_second():
    wall = iter([10.0, 12.0, 12.0])
    readings = iter([{1: ("python", 5.0), 2: ("dds.a", 1.0), 3: ("python", 0.5)},
                     {1: ("python", 6.5), 2: ("dds.a", 1.2), 4: ("python", 0.4)},  # 3 ended, 4 started
                     {}])
    meter = ThreadCpuMeter(clock=lambda: next(wall), read=lambda: next(readings))
    groups = meter.percent(lambda tid, name: "dds" if name.startswith("dds.") else f"t{min(tid, 2)}")
    assert groups == pytest.approx({"dds": 10.0, "t1": 75.0, "t2": 20.0})
    assert meter.percent(lambda tid, name: "all") == {}  # no time has passed


def test_thread_groups_of_the_node():
    pipeline = ("bialign-inference", "bialign-inference-steps")
    assert thread_group("bialign-inference", "python", pipeline) == "inference"
    assert thread_group("bialign-inference-steps", "python", pipeline) == "publishing"
    assert thread_group(threading.main_thread().name, "python", pipeline) == "executor"
    assert thread_group(None, "dds.udp.7412", pipeline) == "middleware"
    assert thread_group(None, "python", pipeline) == "model_pool"  # a native thread: the intra-op pool
    assert thread_group("upsample_0", "python", pipeline) == "helpers"
    assert thread_group("bialign-inference", "python", ()) == "helpers"  # no pipeline while inactive
    streams = ("bialign-inference-1", "bialign-inference-2", "bialign-inference-steps")
    assert [thread_group(name, "python", streams) for name in streams] == ["inference", "inference", "publishing"]
    assert set(THREAD_GROUPS) == {"inference", "model_pool", "publishing", "executor", "middleware", "helpers"}


def test_latency_stats_mean_and_percentiles_of_the_recent_window():
    stats = LatencyStats(size=100)
    assert math.isnan(stats.mean()) and math.isnan(stats.percentile(99))
    for v in range(1000):  # only the last 100 (900..999) are kept
        stats.add(v / 1000)
    assert len(stats) == 100
    assert stats.mean() == pytest.approx(0.9495)
    assert stats.percentile(99) == pytest.approx(0.99801)
    with pytest.raises(ValueError, match="percentile"):
        stats.percentile(101)


def _report(**changes) -> NodeReport:
    base = dict(state="active", input_topic="/front/image_raw", subscription_qos="reliability=reliable",
                input_rate_hz=30.0, output_rate_hz=12.5, latency_mean_ms=80.0, latency_p99_ms=120.0,
                stamp_age_ms=85.0, frames_received=300, frames_processed=125, frames_dropped=175,
                frames_rejected=0, frames_failed=0, frames_waiting=1, seconds_since_input=0.1,
                no_frame_warning=5.0, device="cpu", precision="fp32", backend="torch", model="bialign_dfnet2")
    return NodeReport(**(base | changes))


def test_report_levels():
    assert _report().level() == (OK, "segmenting")
    assert _report(state="inactive").level() == (WARN, "node is inactive")
    assert _report(seconds_since_input=12.0).level() == (WARN, "no input on /front/image_raw for 12 s")
    assert _report(frames_rejected=3).level()[0] == WARN
    assert _report(frames_failed=1).level()[0] == ERROR


def test_report_values_round_trip_and_log_line():
    report = _report(latency_p99_ms=float("nan"), processing_mean_ms=40.0, outputs_rendered=(("color", 3),),
                     cpu_percent=183.4)
    values = parse_key_values(report.key_values())
    assert values["processing_mean_ms"] == 40.0 and values["rendered_color"] == 3
    assert values["cpu_percent"] == 183.4
    assert "cpu_percent" not in parse_key_values(_report(camera="cam0").key_values())  # the node's only
    threads = parse_key_values(_report(cpu_threads=(("inference", 70.25), ("middleware", 2.0))).key_values())
    assert threads["cpu_inference_percent"] == 70.2 and threads["cpu_middleware_percent"] == 2.0
    assert not any(k.startswith("cpu_inf") for k in parse_key_values(
        _report(camera="cam0", cpu_threads=(("inference", 70.0),)).key_values()))
    assert values["input_rate_hz"] == 30.0 and values["frames_dropped"] == 175
    assert values["device"] == "cpu" and values["model"] == "bialign_dfnet2"
    assert math.isnan(values["latency_p99_ms"])
    line = report.log_line()
    assert "in 30.0 Hz, out 12.5 Hz" in line and "175 dropped" in line and "p99 n/a ms" in line


def test_reliability_matches_the_publishers():
    qos = pytest.importorskip("bialign_ros.qos")  # needs rclpy
    assert qos.match_reliability([]) == "best_effort"
    assert qos.match_reliability(["reliable", "reliable"]) == "reliable"
    assert qos.match_reliability(["reliable", "best_effort"]) == "best_effort"
    profile = qos.image_qos("reliable", 5)
    assert qos.describe_qos(profile) == "reliability=reliable, durability=volatile, history=keep_last, depth=5"
    assert "must be reliable" in qos.publisher_requirement(profile)
    assert "any publisher" in qos.publisher_requirement(qos.image_qos("best_effort", 1))


def test_transport_profile_is_found_and_set_once_for_the_right_fast_dds():
    path = transport_profile_path()
    assert path.name == "fastdds_large_frames.xml" and path.is_file()
    env = {"ROS_DISTRO": "jazzy"}
    assert use_transport_profile(env) == path and env[LEGACY_PROFILE_ENV] == str(path)
    env = {"ROS_DISTRO": "kilted"}
    assert use_transport_profile(env) == path and env == {"ROS_DISTRO": "kilted", PROFILE_ENV: str(path)}


@pytest.mark.parametrize("env", [{PROFILE_ENV: ""}, {LEGACY_PROFILE_ENV: "/my/profile.xml"},
                                 {"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"}])
def test_transport_profile_leaves_user_settings_and_other_middlewares_alone(env):
    before = dict(env)
    assert use_transport_profile(env) is None
    assert env == before


def test_profile_variable_follows_the_installed_fast_dds():
    from importlib import metadata

    try:
        metadata.version("ros-fastrtps")
        expected = LEGACY_PROFILE_ENV
    except metadata.PackageNotFoundError:
        expected = PROFILE_ENV
    assert profile_env_var({}) == expected
