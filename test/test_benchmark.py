"""The benchmark library and CLI: peaks, one configuration, several side by side (report and plot), the node."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from bialign_ros.bench.configs import CONFIGS, select_configs, skip_reason
from bialign_ros.bench.measure import (
    MIN_SLICE_FRAMES,
    MeasureOptions,
    node_ratio,
    node_seconds,
    node_spec,
    ratio_cores_allow,
)
from bialign_ros.bench.node_command import SUBSCRIBABLE, node_command
from bialign_ros.bench.ort_profile import PROFILE_RUNS, mac_share, summarise_profile, top_operators
from bialign_ros.bench.output_costs import output_costs_markdown
from bialign_ros.bench.report import cpu_breakdown, markdown_report, print_record
from bialign_ros.bench.resize_cost import measure_resize_cost
from bialign_ros.bench.suite import SuiteOptions, configuration_options, node_options, previous_run
from bialign_ros.cli.benchmark import count_arg, parse_size
from bialign_ros.model import build_model
from bialign_ros.peaks import ConvStack, Peaks, conv_stack_onnx, frame_limit, measure_peaks, model_macs
from bialign_ros.segmenter import Segmenter
from bialign_ros.synthetic import render_scene
from bialign_ros.timing import (
    code_version,
    hardware_summary,
    latency_summary,
    on_worker_thread,
    time_alternating,
    time_calls,
)

TINY = ConvStack(layers=2, channels=32, height=16, width=32)


def _bench(*args, timeout=900):
    return subprocess.run([sys.executable, "-m", "bialign_ros.cli.benchmark", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def test_peaks_are_measured_per_precision():
    peaks = measure_peaks(TINY, repeats=1)
    values = peaks.to_dict()
    assert set(values) == {"torch_fp32", "torch_bf16", "ort_fp32", "ort_int8"}
    assert all(v > 0 for v in values.values())
    assert peaks.limit("fp32") == max(values["torch_fp32"], values["ort_fp32"])
    assert peaks.limit("int8") == values["ort_int8"] and Peaks().limit("int8") is None
    with pytest.raises(ValueError, match="unknown peak kinds"):
        measure_peaks(TINY, kinds=("gpu_fp8",))


def test_int8_peak_runs_quantised_convolutions(tmp_path):
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimised.onnx")
    ort.InferenceSession(conv_stack_onnx(TINY, int8=True), options, providers=["CPUExecutionProvider"])
    ops = {node.op_type for node in onnx.load_model(str(tmp_path / "optimised.onnx")).graph.node}
    assert "QLinearConv" in ops and "Conv" not in ops


def test_model_cost_and_frame_limit():
    macs = model_macs(build_model("bialign_dfnet2", aux=False), 512, 1024)
    assert 28e9 < macs < 31e9  # about 29 GMACs at 512x1024 (4x at 1024x2048)
    assert frame_limit(macs, 870.0) == pytest.approx(870e9 / (2 * macs))
    assert frame_limit(macs, None) is None


def test_latency_statistics():
    summary = latency_summary([0.1, 0.2, 0.3])
    assert summary["n"] == 3 and summary["p50_ms"] == pytest.approx(200.0)
    assert summary["fps"] == pytest.approx(5.0)
    assert time_calls(lambda: None, iters=4, warmup=1)["n"] == 4
    with pytest.raises(ValueError, match="no latencies"):
        latency_summary([])
    with pytest.raises(ValueError, match="iters >= 1"):
        time_calls(lambda: None, iters=0, warmup=0)


def test_alternating_timing_calls_in_turn_and_times_each_function_alone():
    calls = []
    fast, slow = (lambda: calls.append("a")), (lambda: (calls.append("b"), time.sleep(0.02)))
    a, b = time_alternating([fast, slow], iters=3, warmup=1)
    assert calls == ["a", "b"] * 4
    assert a["n"] == b["n"] == 3 and a["mean_ms"] < 5.0 <= 20.0 <= b["mean_ms"]


def test_on_worker_thread_runs_off_the_main_thread_and_hands_back_value_and_error():
    import threading

    assert on_worker_thread(lambda: threading.current_thread().name) == "bare-segmenter"
    assert on_worker_thread(threading.current_thread) is not threading.main_thread()
    with pytest.raises(ZeroDivisionError):
        on_worker_thread(lambda: 1 / 0)


def test_a_time_budget_cuts_slow_calls_short_but_times_three_rounds():
    calls = []

    def slow() -> None:
        calls.append(1)
        time.sleep(0.03)

    # 0.1 s budget: one warmup call of the five (0.03 s is past a quarter of it), then timed calls
    # until 0.1 s is spent: about four of the twenty asked for.
    summary = time_calls(slow, iters=20, warmup=5, budget_s=0.1)
    assert 3 <= summary["n"] <= 5 and len(calls) - summary["n"] <= 2
    # a budget never takes the timed rounds below three, nor above iters
    assert time_calls(slow, iters=20, warmup=0, budget_s=0.001)["n"] == 3
    assert time_calls(slow, iters=2, warmup=0, budget_s=0.001)["n"] == 2
    assert time_calls(lambda: None, iters=50, warmup=2, budget_s=10.0)["n"] == 50
    with pytest.raises(ValueError, match="budget_s > 0"):
        time_calls(slow, iters=2, warmup=0, budget_s=0.0)


def test_a_slow_configurations_node_runs_long_enough_for_eight_frames_a_slice():
    assert node_seconds(25.0, 3, 5.0) == 25.0  # 125 frames
    assert node_seconds(25.0, 3, 0.1) == pytest.approx(240.0)  # 24 frames, not 2.5
    assert round(0.1 * node_seconds(25.0, 3, 0.1)) == 3 * MIN_SLICE_FRAMES


def test_sizes_parse():
    assert parse_size("512x1024") == (512, 1024)
    with pytest.raises(argparse.ArgumentTypeError, match="height x width"):
        parse_size("512")
    with pytest.raises(argparse.ArgumentTypeError, match="too small"):
        parse_size("4x4")


def test_counts_of_runs_and_iterations_are_at_least_one():
    assert count_arg("3") == 3
    with pytest.raises(argparse.ArgumentTypeError, match="at least 1, got 0"):
        count_arg("0")  # --node-pairs 0 divided by zero after the Segmenter's timings
    with pytest.raises(argparse.ArgumentTypeError, match="whole number"):
        count_arg("2.5")


def _node_params(cmd: list[str]) -> dict[str, str]:
    return dict(word.split(":=", 1) for word in cmd[cmd.index("--ros-args") + 1:] if ":=" in word)


def test_node_runs_the_configurations_device_precision_and_backend(tmp_path):
    opts = SuiteOptions(configs=["all"], sizes=[(64, 96)], node=True)
    for name in ("tensorrt-fp16", "torch-fp16-cuda", "onnxruntime-int8", "torch-bf16", "torch-bf16-compiled"):
        config = CONFIGS[name]
        params = _node_params(node_command(node_options(opts, name, "w.onnx", 64, 96, 5.0, cameras=2).spec(("a", "b"))))
        assert (params["device"], params["precision"], params["backend"]) == (
            config.device, config.precision, config.backend), name
        assert params["weights"] == "w.onnx" and params["cameras"] == "[a, b]"
        assert params.get("compile", "false") == str(config.compile).lower(), name
        measured = configuration_options(opts, name, "w.onnx", 64, 96, "f.npz", tmp_path / "ref.npz")
        assert (measured.device, measured.precision, measured.backend) == (
            config.device, config.precision, config.backend)
        assert measured.node and measured.compile == config.compile


def test_node_runs_what_the_measured_segmenter_runs(untrained_weights):
    opts = MeasureOptions(weights=str(untrained_weights), precision="bf16", input_scale=0.5)
    seg = Segmenter.from_checkpoint(untrained_weights, "cpu", "bf16", 0.5, warmup=False)
    try:
        params = _node_params(node_command(node_spec(seg, opts)))
    finally:
        seg.close()
    assert params == {"weights": str(untrained_weights), "device": "cpu", "precision": "bf16", "backend": "torch",
                      "input_scale": "0.5"}


def test_the_node_benchmark_starts_the_node_with_its_inference_streams():
    from bialign_ros.bench.node_bench import NodeBenchOptions
    from bialign_ros.cli.node_benchmark import build_parser

    args = build_parser().parse_args(["--weights", "w.onnx", "--inference-streams", "2"])
    params = _node_params(node_command(NodeBenchOptions("w.onnx", inference_streams=args.inference_streams).spec()))
    assert params["inference_streams"] == "2"
    assert "inference_streams" not in _node_params(node_command(NodeBenchOptions("w.onnx").spec()))  # the default


def test_node_ratio_is_the_delivered_rate_over_the_segmenter_rate_around_each_slice():
    assert node_ratio(9.0, [8.0, 12.0]) == pytest.approx(0.9)
    assert node_ratio(10.0, [10.0, 10.0]) == 1.0
    # three slices: around them 10, 12 and 14 Hz, so 12 on average; the ends count half
    assert node_ratio(9.0, [8.0, 12.0, 12.0, 16.0]) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="before and after"):
        node_ratio(9.0, [8.0])


def test_the_cores_allow_the_model_every_core_second_the_rest_left():
    threads = {"inference": 69.0, "model_pool": 53.0, "publishing": 11.0, "executor": 5.0, "middleware": 2.0}
    # the rest: 141 - 122 of the node's (its threads' groups and any it could not name) and 13 of the benchmark's
    assert ratio_cores_allow(threads, 141.0, 13.0, 190.0, 2) == pytest.approx((200 - 19 - 13) / 190)
    # a bare Segmenter that used less than the cores left: the cores do not stand in the node's way
    assert ratio_cores_allow(threads, 141.0, 13.0, 100.0, 2) > 1
    assert ratio_cores_allow({}, 141.0, 13.0, 190.0, 2) is None
    assert ratio_cores_allow(threads, 141.0, None, 190.0, 2) is None
    assert ratio_cores_allow(threads, 141.0, 13.0, None, 2) is None


def test_all_leaves_out_bf16_on_a_cpu_without_bf16_instructions_unless_named():
    avx2, amx = frozenset({"avx2", "fma"}), frozenset({"avx2", "avx512f", "amx_bf16"})
    for name in ("torch-bf16", "torch-bf16-compiled"):
        assert "no bf16 instructions" in skip_reason(name, named=False, flags=avx2)
        assert skip_reason(name, named=True, flags=avx2) is None  # named itself: measured anyway
        assert skip_reason(name, named=False, flags=amx) is None
        assert skip_reason(name, named=False, flags=frozenset({"avx512_bf16"})) is None
        assert skip_reason(name, named=False, flags=frozenset()) is None  # flags unknown: measured
    assert skip_reason("torch-fp32", named=False, flags=avx2) is None
    assert skip_reason("onnxruntime-int8", named=False, flags=avx2) is None
    if not torch.cuda.is_available():  # a configuration that cannot run here stays out even when named
        assert skip_reason("torch-fp16-cuda", named=True, flags=amx) == "no CUDA device on this machine"


def test_configurations_are_chosen_with_the_reference_first():
    assert select_configs(["onnxruntime-fp32", "torch-fp32", "torch-fp32"]) == ["torch-fp32", "onnxruntime-fp32"]
    assert select_configs(["all"])[0] == "torch-fp32" and len(select_configs(["all"])) == len(CONFIGS)
    with pytest.raises(ValueError, match=r"unknown configurations \['torch-int4'\]"):
        select_configs(["torch-int4"])


@pytest.fixture(scope="module")
def suite(untrained_weights, tmp_path_factory):
    work = tmp_path_factory.mktemp("bench")
    proc = _bench("--weights", untrained_weights, "--configs", "torch-fp32", "onnxruntime-fp32",
                  "torch-fp16-cuda", "--sizes", "64x96", "--peak-map", "16x32", "--iters", 5, "--warmup", 1,
                  "--time-budget", 0.001,
                  "--agreement-frames", 1, "--work-dir", work, "--json", work / "suite.json",
                  "--markdown", work / "bench.md", "--plot", work / "fps.png")
    assert proc.returncode == 0, proc.stderr
    return work


def test_suite_runs_configurations_side_by_side(suite):
    record = json.loads((suite / "suite.json").read_text())
    results = {r["config"]: r for r in record["results"]}
    assert set(results) == {"torch-fp32", "onnxruntime-fp32"}
    assert results["onnxruntime-fp32"]["backend"] == "onnxruntime"
    assert results["onnxruntime-fp32"]["agreement"] > 0.999  # fp32 export vs PyTorch fp32
    for r in results.values():
        # the budget (1 ms) cuts every timing to the three timed calls it never goes below
        assert r["model"]["n"] == r["segmenter"]["n"] == 3 and r["segmenter"]["fps"] > 0 and r["memory_peak_mb"] > 100
        # each configuration against the int8 limit of its own minutes, and against the run's
        size = record["sizes"][0]
        beside = r["int8_peak_beside"]
        assert len(beside) == 2 and min(beside) > 0
        fps = r["segmenter"]["fps"]
        assert r["segmenter"]["of_int8_limit"] == pytest.approx(fps / frame_limit(size["macs"], max(beside)))
        assert r["segmenter"]["of_run_int8_limit"] == pytest.approx(fps / size["limits_fps"]["int8"])
        # the multiply-accumulate kernels' ceiling, from ONNX Runtime's profile (PyTorch has none)
        profile = r.get("ort_profile")
        assert (r["kernels_allow"] is None) == (profile is None)
        if profile is not None:
            assert r["kernels_allow"] == pytest.approx(r["model"]["of_int8_limit"] / mac_share(profile))
            assert r["kernels_allow"] > r["model"]["of_int8_limit"]
    assert record["peaks"]["ort_int8"] > 0 and record["sizes"][0]["limits_fps"]["int8"] > 0
    unavailable = {u["config"]: u["reason"] for u in record["unavailable"]}
    assert "torch-fp16-cuda" in unavailable or "gpu" in record["hardware"]


def test_suite_writes_report_and_plot(suite):
    text = (suite / "bench.md").read_text()
    record = json.loads((suite / "suite.json").read_text())
    assert record["hardware"]["cpu"] in text and "## 64x96 (height x width)" in text
    assert "| torch-fp32 |" in text and "| onnxruntime-fp32 |" in text and "UNTRAINED" in text
    assert "5 timed calls after 1 untimed ones, fewer for a slow configuration" in text
    assert (suite / "fps.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert markdown_report(record) == text


def test_report_holds_the_best_configuration_against_the_int8_limit_of_its_own_minutes(suite):
    record = json.loads((suite / "suite.json").read_text())
    best = max(record["results"], key=lambda r: r["segmenter"]["fps"])  # both agree with fp32 here
    beside, s = best["int8_peak_beside"], best["segmenter"]
    row = (f"| 64x96 | {best['config']} | {s['fps']:.2f} | {beside[0]:.0f} / {beside[1]:.0f} | "
           f"{s['of_int8_limit']:.3f}x (")
    text = markdown_report(record)
    allow = "–" if best["kernels_allow"] is None else f"{best['kernels_allow']:.2f}x"
    assert row in text and text.split(row)[1].split("\n")[0].split(" | ")[1:3] == [
        allow, f"{s['of_run_int8_limit']:.3f}x"]
    every = [p for r in record["results"] for p in r["int8_peak_beside"]]
    assert f"Int8 peaks beside the configurations: {min(every):.0f}-{max(every):.0f} GOP/s" in text


def test_report_says_where_the_cores_went_in_the_node_runs(suite):
    record = json.loads((suite / "suite.json").read_text())
    assert "## Where the cores went" not in markdown_report(record)  # this suite ran no node
    record["hardware"]["cores"] = 2
    threads = {"inference": 69.0, "model_pool": 53.0, "publishing": 11.0, "executor": 5.0, "middleware": 2.0,
               "helpers": 0.0}
    record["results"][0]["node"] = {"ratio_to_segmenter": 0.71, "threads_cpu_percent": threads, "cpu_percent": 141.0,
                                    "harness_cpu_percent": 13.0, "segmenter_cpu_percent": 190.0,
                                    "ratio_cores_allow": ratio_cores_allow(threads, 141.0, 13.0, 190.0, 2)}
    text = markdown_report(record)
    config = record["results"][0]["config"]
    assert "## Where the cores went in the node runs" in text and "(200 for the machine)" in text
    assert f"| {config} | 64x96 | 0.71 | 69 | 53 | 11 | 5 | 2 | 0 | 141 | 13 | 46 | 190 | 0.88 |" in text
    assert cpu_breakdown(threads, 141.0, 13.0, 2) == ("inference 69, model_pool 53, publishing 11, executor 5, "
                                                      "middleware 2, helpers 0 (node 141); camera and "
                                                      "subscribers 13; idle 46 of 200")
    assert cpu_breakdown({"inference": 50.0}, None, None, 2).endswith("(node –); camera and subscribers –; "
                                                                      "idle – of 200")


def test_report_sets_the_node_with_several_frames_at_once_beside_the_node_one_at_a_time(suite):
    record = json.loads((suite / "suite.json").read_text())
    assert "frames in inference at once" not in markdown_report(record)  # this suite ran no node
    ort = next(r for r in record["results"] if r["config"] == "onnxruntime-fp32")
    ort["node"] = {"ratio_to_segmenter": 0.9123, "latency_p50_ms": 413.7, "ratio_cores_allow": 0.97}
    record["streams"] = [{"config": "onnxruntime-fp32", "inference_streams": 2, "height": 64, "width": 96,
                          "ratio": 1.0802, "latency_ms": {"p50": 573.5}, "ratio_cores_allow": 0.961}]
    text = markdown_report(record)
    assert "## 2 frames in inference at once" in text and "`bialign_node_benchmark --inference-streams 2`" in text
    assert "| 64x96 | 0.912 | 414 | 1.080 | 574 | 0.96 |" in text
    # both in the targets table, each against the backend's target
    assert "| onnxruntime-fp32 | 64x96 | 0.912 | 0.97 | >= 0.95 (not met) |" in text
    assert "| onnxruntime-fp32, 2 frames at once | 64x96 | 1.080 | 0.96 | >= 0.95 (met) |" in text


def test_report_sets_a_previous_run_beside_this_one(suite):
    record = json.loads((suite / "suite.json").read_text())
    assert "## Against the previous run" not in markdown_report(record)
    record["previous"] = previous_run(suite / "suite.json")
    earlier = record["previous"]["results"][0]
    earlier["segmenter"]["fps"] = record["results"][0]["segmenter"]["fps"] / 1.25
    text = markdown_report(record)
    assert "## Against the previous run" in text and "on the same machine" in text
    (first, new), (second, same) = ((r["config"], r["segmenter"]["fps"]) for r in record["results"][:2])
    assert f"| {first} | 64x96 | {new:.2f} / {earlier['segmenter']['fps']:.2f} | +25 % |" in text
    assert f"| {second} | 64x96 | {same:.2f} / {same:.2f} | +0 % |" in text
    record["previous"]["hardware"] = {**record["hardware"], "cpu": "Another CPU"}
    assert "on another machine (Another CPU)" in markdown_report(record)
    for then, now, said in (("0.1.0 git a", "0.1.0 git a", "with the same code: how far"),
                            ("0.1.0 git a", "0.1.0 git b", "with other code (bialign_ros 0.1.0 git a then, 0.1.0 "
                                                           "git b now)"),
                            ("0.1.0 git a+changes", "0.1.0 git a+changes", "with other code"),
                            (None, "0.1.0 git b", "with other code (bialign_ros not recorded then")):
        record["hardware"]["bialign_ros"], record["previous"]["hardware"]["bialign_ros"] = now, then
        assert said in markdown_report(record), (then, now)
    assert f"- code: bialign_ros {now}" in markdown_report(record)


def test_code_version_names_the_checkouts_commit():
    """The suite record names the code it measured: the package's version and the commit of its checkout."""
    root = Path(__file__).resolve().parents[1]
    commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                            text=True)
    if commit.returncode:
        pytest.skip("not a git checkout")
    assert re.fullmatch(rf"\S+ git {commit.stdout.strip()}(\+changes)?", code_version())
    assert hardware_summary()["bialign_ros"] == code_version()


def test_a_previous_run_that_is_no_suite_record_is_refused_before_measuring(untrained_weights, tmp_path):
    (tmp_path / "other.json").write_text(json.dumps({"model": {}}))
    for path in (tmp_path / "missing.json", tmp_path / "other.json"):
        start = time.monotonic()
        proc = _bench("--weights", untrained_weights, "--configs", "torch-fp32", "--work-dir", tmp_path,
                      "--previous", path, timeout=300)
        assert proc.returncode == 2 and f"--previous {path}: not a suite record" in proc.stderr, proc.stderr
        assert time.monotonic() - start < 60  # no configuration measured first


def test_unknown_configuration_is_an_error(untrained_weights, tmp_path):
    proc = _bench("--weights", untrained_weights, "--configs", "torch-int4", "--work-dir", tmp_path,
                  timeout=300)
    assert proc.returncode == 2 and "unknown configurations ['torch-int4']" in proc.stderr
    assert "torch-fp32" in CONFIGS and CONFIGS["onnxruntime-int8"].precision == "int8"


@pytest.mark.ros
def test_node_end_to_end(untrained_weights):
    proc = _bench("--weights", untrained_weights, "--height", 64, "--width", 96, "--iters", 2, "--warmup", 1,
                  "--device", "cpu", "--node", "--node-seconds", 4, "--node-warmup", 3)
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout.strip().splitlines()[-1])
    node = record["node"]
    assert node["published"] >= 3 and node["delivered"] >= 1
    assert node["delivered"] + node["dropped"] == node["published"]
    assert 0 < node["delivered_hz"] <= node["publish_hz"] * 1.5
    assert np.isfinite(node["latency_p50_ms"]) and node["memory_peak_mb"] > 100
    around = node["segmenter_fps_around"]
    assert len(around) == 4 and (around[0], around[-1]) == (node["segmenter_fps_before"], node["segmenter_fps_after"])
    assert node["ratio_to_segmenter"] == pytest.approx(node_ratio(node["delivered_hz"], around))
    assert node["subscribed"] == ["labels", "edges"] and node["segmenter_work"] == {"edges": True, "confidence": False}


@pytest.mark.ros
def test_suite_with_node_measures_two_cameras_in_one_node(untrained_weights, tmp_path):
    """With every output subscribed (--node-outputs all), in the configuration's node run and the cameras'."""
    proc = _bench("--weights", untrained_weights, "--configs", "torch-fp32", "--sizes", "64x96",
                  "--peak-map", "16x32", "--iters", 2, "--warmup", 1, "--agreement-frames", 1, "--node",
                  "--node-seconds", 8, "--node-warmup", 3, "--cameras", 2, "--work-dir", tmp_path,
                  "--node-outputs", "all",
                  "--json", tmp_path / "suite.json", "--markdown", tmp_path / "bench.md")
    assert proc.returncode == 0, proc.stderr
    record = json.loads((tmp_path / "suite.json").read_text())
    cams = record["cameras"]
    assert cams["config"] == "torch-fp32" and cams["cameras"] == 2 and (cams["height"], cams["width"]) == (64, 96)
    multi = cams["multi_camera"]
    assert set(multi["per_camera"]) == {"cam0", "cam1"} and multi["combined_rate_hz"] > 0
    assert multi["batched_frames"] >= 2 and multi["forward_passes"] >= 1
    assert cams["combined_vs_one_camera"] == pytest.approx(
        multi["combined_rate_hz"] / cams["one_camera"]["output_median_rate_hz"])
    text = (tmp_path / "bench.md").read_text()
    assert "## 2 cameras in one node" in text and f"**{cams['combined_vs_one_camera']:.2f}**" in text
    node = record["results"][0]["node"]
    assert node["subscribed"] == ["labels", *SUBSCRIBABLE]
    assert node["segmenter_work"] == {"edges": True, "confidence": True}  # the same maps as the node computes
    assert "| torch-fp32 | 64x96 |" in text and ">= 0.9 (" in text  # the node's target on torch
    assert node["segmenter_cpu_percent"] > 0 and node["ratio_cores_allow"] > 0
    assert f"| {node['ratio_cores_allow']:.2f} | >= 0.9 (" in text
    assert f"with {', '.join(node['subscribed'])} subscribed" in text
    for received in (node["outputs_received"], cams["one_camera"]["outputs_received"],
                     *(c["outputs_received"] for c in multi["per_camera"].values())):
        assert set(received) == set(SUBSCRIBABLE) and min(received.values()) >= 1, received


@pytest.mark.ros
@pytest.mark.long
def test_suite_with_node_runs_the_int8_node_again_with_two_frames_in_inference_at_once(untrained_weights, tmp_path):
    proc = _bench("--weights", untrained_weights, "--configs", "onnxruntime-int8", "--sizes", "64x96",
                  "--peak-map", "16x32", "--iters", 2, "--warmup", 1, "--agreement-frames", 1, "--calib-frames", 2,
                  "--node", "--node-seconds", 6, "--node-warmup", 3, "--cameras", 1, "--node-streams", 2,
                  "--work-dir", tmp_path, "--json", tmp_path / "suite.json", "--markdown", tmp_path / "bench.md")
    assert proc.returncode == 0, proc.stderr
    record = json.loads((tmp_path / "suite.json").read_text())
    assert "cameras" not in record  # --cameras 1
    (streams,) = record["streams"]
    assert (streams["config"], streams["inference_streams"], streams["height"], streams["width"]) == (
        "onnxruntime-int8", 2, 64, 96)
    assert streams["outputs"] >= 1 and streams["ratio"] > 0 and streams["latency_ms"]["p50"] > 0
    assert streams["ratio"] == pytest.approx(node_ratio(streams["delivered_hz"], streams["segmenter_hz_around"]))
    text = (tmp_path / "bench.md").read_text()
    assert "## 2 frames in inference at once" in text
    assert f"| onnxruntime-int8, 2 frames at once | 64x96 | {streams['ratio']:.3f} |" in text


def test_resize_cost_times_the_exact_and_the_nearest_resize_of_one_frame(untrained_weights):
    seg = Segmenter.from_checkpoint(untrained_weights, device="cpu", input_scale=0.5, warmup=False)
    image = render_scene(3, 96, 160).image
    record = measure_resize_cost(seg, image, iters=2, warmup=1)
    assert record["network_size"] == [48, 80] and record["size"] == [96, 160] and 0 < record["boundary_cells"] < 1
    extra = record["exact"]["mean_ms"] - record["nearest"]["mean_ms"]
    assert record["overhead"] == pytest.approx(extra / (record["segmenter"]["mean_ms"] - extra))
    with pytest.raises(ValueError, match="nothing to resize"):
        measure_resize_cost(Segmenter.from_checkpoint(untrained_weights, device="cpu", warmup=False), image, 1, 0)


def test_output_costs_table_holds_each_figure_against_its_target():
    summary = {"mean_ms": 2.0}
    record = {
        "options": {"weights": "/w/m.int8.onnx", "height": 512, "width": 1024, "geometry_height": 1024,
                    "geometry_width": 2048, "node_pairs": 2, "node_seconds": 20.0, "resize_scale": 0.5},
        "backend": "onnxruntime", "precision": "int8", "hardware": {"cpu": "Test CPU", "cores": 2}, "threads": 2,
        "node_rate_hz": 12.0,
        "segmenter": {"labels_edges": {"mean_ms": 100.0}, "with_confidence_and_free_space": {"mean_ms": 104.0},
                      "overhead": 0.04},
        "geometry": {"grid": summary, "grid_map": {"mean_ms": 250.0}, "points_16UC1": {"mean_ms": 9.0},
                     "points_32FC1": {"mean_ms": 24.0}},
        "resize": {"exact": {"mean_ms": 30.0}, "nearest": {"mean_ms": 2.0}, "boundary_cells": 0.083,
                   "segmenter": {"mean_ms": 228.0}, "overhead": 0.14},
        "node": {"labels_only": {"delivered_hz": 10.0}, "every_output": {"delivered_hz": 8.5}},
        "node_ratio": 0.85, "node_pair_ratios": [0.8, 0.9],
    }
    table = output_costs_markdown(record)
    assert "(m.int8.onnx, backend onnxruntime int8, Segmenter at 512x1024" in table
    rows = {line.split(" | ")[0].lstrip("| "): line for line in table.splitlines()
            if line.startswith("| ") and "---" not in line}
    assert rows["confidence + free space, Segmenter frame time"].endswith("(+4.0 %) | <= +5 % | meets |")
    assert rows["grid, 1024x2048 labels"].endswith("| <= 5 ms | meets |")
    assert rows["points, 1024x2048 depth 16UC1, stride 1"].endswith("9.0 ms | <= 10 ms | meets |")
    assert rows["points, 1024x2048 depth 32FC1, stride 1"].endswith("24.0 ms | <= 10 ms | MISSES |")
    assert rows["labels + edges at 1024x2048 from input_scale 0.5: exact against nearest neighbour, Segmenter "
                "frame time"].endswith("30.0 against 2.0 ms (8.3 % of the cells on a label boundary) in a 228 ms "
                                       "frame (+14.0 %) | <= +15 % | meets |")
    assert rows["node delivered rate, every output / labels only"].endswith(
        "= 0.85 (pairs of runs: 0.80, 0.90) | >= 0.9 | MISSES |")


def test_profile_summary_counts_the_last_frames_kernel_times_per_operator_type():
    def node(op, ts, dur, suffix="_kernel_time"):
        return {"cat": "Node", "name": f"n_{op}{suffix}", "ts": ts, "dur": dur, "args": {"op_name": op}}

    def frame(ts, dur):
        return {"cat": "Session", "name": "model_run", "ts": ts, "dur": dur}

    events = [frame(0, 100), node("QLinearConv", 10, 50),  # the warm-up frame
              frame(200, 100), node("QLinearConv", 210, 40), node("QGemm", 250, 30),
              node("QGemm", 260, 9, "_fence_before"),
              frame(400, 80), node("QLinearConv", 410, 60)]
    profile = summarise_profile(events, 2)
    assert profile["frames"] == 2 and profile["frame_ms"] == pytest.approx(0.09)
    assert list(profile["operators_ms"]) == ["QLinearConv", "QGemm"]  # largest first
    assert list(profile["operators_ms"].values()) == pytest.approx([0.05, 0.015])
    rows = top_operators(profile, top=1)
    assert [op for op, _, _ in rows] == ["QLinearConv", "other", "between kernels"]
    assert [ms for _, ms, _ in rows] == pytest.approx([0.05, 0.015, 0.025])
    assert rows[0][2] == pytest.approx(0.05 / 0.09)
    with pytest.raises(ValueError, match="holds 3 frame"):
        summarise_profile(events, 4)


def test_the_multiply_accumulate_share_counts_convolutions_and_matrix_products_only():
    profile = {"frame_ms": 100.0, "operators_ms": {"QLinearConv": 60.0, "QGemm": 15.0, "Conv": 5.0, "ArgMax": 8.0,
                                                   "Transpose": 4.0, "GridSample": 3.0}}
    assert mac_share(profile) == pytest.approx(0.8)
    assert mac_share({"frame_ms": 0.0, "operators_ms": {}}) == 0.0


def test_report_says_where_an_int8_frame_goes(suite, capsys):
    record = json.loads((suite / "suite.json").read_text())
    result = next(r for r in record["results"] if r["backend"] == "onnxruntime")
    profile = result["ort_profile"]  # ONNX Runtime's own profiler on the Segmenter's graph
    print_record(result, record["hardware"])  # what bialign_benchmark prints for one configuration
    assert f"; multiply-accumulate kernels {100 * mac_share(profile):.0f} % of it" in capsys.readouterr().out
    assert profile["frames"] == PROFILE_RUNS and any("Conv" in op for op in profile["operators_ms"])
    assert 0 < sum(profile["operators_ms"].values()) <= profile["frame_ms"]
    assert "## Where an int8 frame goes" not in markdown_report(record)  # an fp32 graph only
    result["precision"] = "int8"
    text = markdown_report(record)
    (op, ms, share), *_ = top_operators(profile)
    row = f"| {result['config']} | 64x96 | {profile['frame_ms']:.1f} | {op} {ms:.1f} ({100 * share:.0f} %), "
    rest = text.split(row)[1].split("\n")[0]
    assert "## Where an int8 frame goes" in text and row in text and rest.endswith(
        f"| {100 * mac_share(profile):.0f} % | {result['kernels_allow']:.2f}x | – |")
    record["previous"] = previous_run(suite / "suite.json")
    assert f"| {op} {100 * share:.0f} %, " in markdown_report(record).split(row)[1].split("\n")[0]
