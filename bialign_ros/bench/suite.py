"""Every configuration at every size side by side, against the machine's convolution peaks.

Exports and quantises the checkpoint as needed (cached in the work directory), measures the
peaks, then measures every configuration at every size in a process of its own
(:mod:`bialign_ros.bench.worker`), each compared with the PyTorch fp32 labels on held-out
synthetic frames; with the node, also several cameras in one node with the best configuration, and
ONNX Runtime int8's node with several frames in inference at once at every size.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bialign_ros.bench.artifacts import prepare_weights
from bialign_ros.bench.configs import AGREEMENT_TARGET, CONFIGS, REFERENCE_CONFIG, select_configs, skip_reason
from bialign_ros.bench.frames import AGREEMENT_SEED, synthetic_frames
from bialign_ros.bench.measure import MeasureOptions, node_seconds, use_threads
from bialign_ros.bench.ort_profile import mac_share
from bialign_ros.bench.worker import WorkerFailed, run_in_child
from bialign_ros.peaks import PEAK_REPEATS, ConvStack, Peaks, frame_limit, measure_peaks, model_macs
from bialign_ros.ros_domains import pick_domain_id
from bialign_ros.timing import hardware_summary

if TYPE_CHECKING:
    from bialign_ros.bench.node_bench import NodeBenchOptions


@dataclass(frozen=True)
class SuiteOptions:
    """What the suite measures (the options of ``bialign_benchmark --configs``)."""

    configs: list[str]
    sizes: list[tuple[int, int]]
    work_dir: Path = Path("bench_out")
    peak_map: tuple[int, int] = (128, 256)
    agreement_frames: int = 4
    calib_frames: int = 8
    iters: int = 10
    warmup: int = 2
    time_budget: float = 0.0
    threads: int = 0
    node: bool = False
    node_seconds: float = 20.0
    node_warmup: float = 8.0
    node_rate: float = 0.0
    node_rate_factor: float = 1.2
    node_outputs: tuple[str, ...] = ()
    node_slices: int = 3
    cameras: int = 2
    """With the node: this many cameras in one node, with the best configuration at the first size."""
    node_streams: int = 2
    """With the node: :data:`STREAMS_CONFIG`'s node again at every size with this many frames in inference
    at once (its ``inference_streams``; below 2: not measured)."""


STREAMS_CONFIG = "onnxruntime-int8"
"""The configuration whose node runs again with several frames in inference at once: the fast model whose
threads, in lock-step, lose most to the node's other threads taking a core."""


def run_suite(opts: SuiteOptions, weights: Path) -> dict[str, Any]:
    """Every configuration at every size, each in its own process; returns the suite record."""
    from bialign_ros.backends.torch_runner import load_inference_model

    use_threads(opts.threads)
    work = opts.work_dir
    work.mkdir(parents=True, exist_ok=True)
    names = select_configs(opts.configs)
    print("measuring the machine's convolution peaks ...", flush=True)
    stack = ConvStack(height=opts.peak_map[0], width=opts.peak_map[1])
    peaks = measure_peaks(stack, threads=opts.threads, repeats=PEAK_REPEATS)
    suite: dict[str, Any] = {"hardware": hardware_summary(), "peaks": peaks.to_dict(),
                             "peaks_at_start": peaks.to_dict(), "peak_stack": asdict(stack), "sizes": [],
                             "results": [], "unavailable": [], "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                             "timing": {"iters": opts.iters, "warmup": opts.warmup, "time_budget": opts.time_budget,
                                        "node_seconds": opts.node_seconds, "node_slices": opts.node_slices}}
    model, meta = load_inference_model(weights) if weights.suffix == ".pt" else (None, None)
    suite["arch"] = meta.arch if meta else None
    suite["untrained"] = bool(meta and meta.training.get("untrained"))
    suite["weights"] = {"file": weights.name, "heldout_miou": meta.training.get("heldout_miou") if meta else None,
                        "input_scale": meta.training.get("input_scale") if meta else None}
    skipped = {n: reason for n in names if (reason := skip_reason(n, named=n in opts.configs))}
    suite["unavailable"] += [{"config": n, "reason": reason} for n, reason in skipped.items()]
    runnable = [n for n in names if n not in skipped]
    files = {n: prepare_weights(CONFIGS[n], weights, work, opts.sizes[0], opts.calib_frames) for n in runnable}
    for h, w in opts.sizes:
        suite["sizes"].append({"height": h, "width": w, "macs": model_macs(model, h, w) if model else None})
        frames_path = work / f"frames_{h}x{w}.npz"
        np.savez(frames_path, frames=synthetic_frames(opts.agreement_frames, h, w, AGREEMENT_SEED))
        reference = work / f"reference_{h}x{w}.npz"
        for name in runnable:
            print(f"{w}x{h} {name} ...", flush=True)
            try:
                options = configuration_options(opts, name, str(files[name]), h, w, str(frames_path), reference)
                record = run_in_child("configuration", options, work / f"record_{name}_{h}x{w}.json")
                suite["results"].append(record)
            except WorkerFailed as exc:
                suite["unavailable"].append({"config": name, "size": [h, w], "reason": str(exc)})
    if opts.node and opts.cameras > 1:
        suite["cameras"] = measure_cameras(opts, suite, files)
    if opts.node and opts.node_streams > 1 and STREAMS_CONFIG in files:
        suite["streams"] = measure_streams(opts, suite, files[STREAMS_CONFIG])
    # Peaks again at the end: a shared machine can be busy at any moment, and a peak measured low
    # would flatter every ratio to it. The higher of the two is the run's limit (a configuration with
    # int8 peaks of its own beside it is held against those: apply_limits).
    print("measuring the peaks again ...", flush=True)
    again = measure_peaks(stack, threads=opts.threads, repeats=PEAK_REPEATS)
    suite["peaks_at_end"] = again.to_dict()
    apply_limits(suite, Peaks(**{k: max(v, again.to_dict()[k]) for k, v in peaks.to_dict().items()}))
    return suite


def configuration_options(opts: SuiteOptions, name: str, weights: str, height: int, width: int, frames: str,
                          reference: Path) -> MeasureOptions:
    """The options of configuration ``name`` at one size: the reference saves its labels, the others
    compare with them."""
    config = CONFIGS[name]
    is_reference = name == REFERENCE_CONFIG
    return MeasureOptions(
        weights=weights, height=height, width=width, backend=config.backend, device=config.device,
        precision=config.precision, compile=config.compile, threads=opts.threads, iters=opts.iters,
        warmup=opts.warmup, time_budget=opts.time_budget, config_name=name, frames=frames,
        reference=str(reference) if not is_reference and reference.is_file() else None,
        save_labels=str(reference) if is_reference else None,
        node=opts.node, node_seconds=opts.node_seconds, node_warmup=opts.node_warmup,
        node_rate=opts.node_rate, node_rate_factor=opts.node_rate_factor, node_outputs=opts.node_outputs,
        node_slices=opts.node_slices, int8_peak_map=opts.peak_map)


def previous_run(path: Path) -> dict[str, Any]:
    """The figures of an earlier suite record (``--json`` of another run) that a report sets beside its
    own: when and where it ran, and per configuration and size the Segmenter's rate and the node's.
    ValueError names a file that is missing or not such a record."""
    try:
        record = json.loads(Path(path).read_text())
        kept = ("config", "height", "width", "segmenter", "node", "ort_profile")
        results = [{k: r.get(k) for k in kept} for r in record["results"]]
        return {"path": str(path), "started": record["started"], "hardware": record["hardware"], "results": results}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"--previous {path}: not a suite record of bialign_benchmark --configs ({exc})") from exc


def best_result(suite: dict[str, Any], height: int, width: int) -> dict[str, Any] | None:
    """The fastest configuration through the Segmenter at ``height`` x ``width`` whose labels agree
    with fp32 on at least :data:`AGREEMENT_TARGET` (fp32 itself counts)."""
    rows = [r for r in suite["results"] if (r["height"], r["width"]) == (height, width)
            and (r["config"] == REFERENCE_CONFIG or (r.get("agreement") or 0.0) >= AGREEMENT_TARGET)]
    return max(rows, key=lambda r: r["segmenter"]["fps"]) if rows else None


def measure_cameras(opts: SuiteOptions, suite: dict[str, Any], files: dict[str, Path]) -> dict[str, Any] | None:
    """The node benchmark with ``opts.cameras`` cameras and the best configuration at the first size: one
    camera, then all cameras in one node, each published at the rate factor times the Segmenter rate.
    Returns its record (with the configuration's name), or None when it failed."""
    h, w = suite["sizes"][0]["height"], suite["sizes"][0]["width"]
    best = best_result(suite, h, w)
    if best is None:
        return None
    rate = opts.node_rate or opts.node_rate_factor * best["segmenter"]["fps"]
    print(f"{w}x{h} {best['config']}: {opts.cameras} cameras in one node ...", flush=True)
    node_opts = node_options(opts, best["config"], str(files[best["config"]]), h, w, rate, cameras=opts.cameras)
    try:
        record = run_in_child("node", node_opts, opts.work_dir / f"cameras_{opts.cameras}_{h}x{w}.json")
    except WorkerFailed as exc:
        suite["unavailable"].append({"config": f"{best['config']} x{opts.cameras} cameras", "size": [h, w],
                                     "reason": str(exc)})
        return None
    return {"config": best["config"], **record}


def measure_streams(opts: SuiteOptions, suite: dict[str, Any], weights: Path) -> list[dict[str, Any]]:
    """The node benchmark of :data:`STREAMS_CONFIG` at every size with ``opts.node_streams`` frames in
    inference at once, the camera at the rate factor times that configuration's Segmenter rate (the bare
    Segmenter still one frame at a time on every core); one record per size it was measured at."""
    records = []
    for size in suite["sizes"]:
        h, w = size["height"], size["width"]
        one = next((r for r in suite["results"] if (r["config"], r["height"], r["width"]) == (STREAMS_CONFIG, h, w)),
                   None)
        if one is None:
            continue
        rate = opts.node_rate or opts.node_rate_factor * one["segmenter"]["fps"]
        print(f"{w}x{h} {STREAMS_CONFIG}: {opts.node_streams} frames in inference at once ...", flush=True)
        node_opts = node_options(opts, STREAMS_CONFIG, str(weights), h, w, rate, streams=opts.node_streams)
        try:
            record = run_in_child("node", node_opts, opts.work_dir / f"streams_{opts.node_streams}_{h}x{w}.json")
        except WorkerFailed as exc:
            suite["unavailable"].append({"config": f"{STREAMS_CONFIG} node, {opts.node_streams} frames at once",
                                         "size": [h, w], "reason": str(exc)})
            continue
        records.append({"config": STREAMS_CONFIG, **record})
    return records


def node_options(opts: SuiteOptions, name: str, weights: str, height: int, width: int, rate: float,
                 cameras: int = 1, streams: int = 1) -> NodeBenchOptions:
    """The node benchmark's options for configuration ``name`` with ``cameras`` cameras at ``rate`` and
    ``streams`` frames in inference at once, long enough for eight frames a slice (:func:`node_seconds`)."""
    from bialign_ros.bench.node_bench import NodeBenchOptions

    config = CONFIGS[name]
    return NodeBenchOptions(weights=weights, width=width, height=height, input_scale=1.0, cameras=cameras,
                            rate=round(rate, 3), duration=node_seconds(opts.node_seconds, opts.node_slices, rate),
                            device=config.device, precision=config.precision, backend=config.backend,
                            compile=config.compile, inference_streams=streams, outputs=opts.node_outputs,
                            slices=opts.node_slices, domain_id=pick_domain_id("benchmarks"))


def apply_limits(suite: dict[str, Any], peaks: Peaks) -> None:
    """Store ``peaks``, each size's frame-rate limits, and every figure's fraction of them: ``of_int8_limit``
    against the int8 limit of the configuration's own minutes (the higher of the int8 peaks measured beside
    its timing) where it has them, else against the run's, as ``of_run_int8_limit`` and ``of_own_limit`` are;
    and each configuration's :func:`kernels_allow`."""
    suite["peaks"] = peaks.to_dict()
    for size in suite["sizes"]:
        size["limits_fps"] = {p: frame_limit(size["macs"], peaks.limit(p)) if size["macs"] else None
                              for p in ("fp32", "bf16", "int8")}
    for record in suite["results"]:
        size = next(s for s in suite["sizes"] if (s["height"], s["width"]) == (record["height"], record["width"]))
        limit, beside = size["limits_fps"], record.get("int8_peak_beside")
        int8 = frame_limit(size["macs"], max(beside)) if beside and size["macs"] else limit["int8"]
        for stage in ("model", "segmenter"):
            fps, own = record[stage]["fps"], limit.get(record["precision"])
            record[stage]["of_int8_limit"] = fps / int8 if int8 else None
            record[stage]["of_run_int8_limit"] = fps / limit["int8"] if limit["int8"] else None
            record[stage]["of_own_limit"] = fps / own if own else None
        record["kernels_allow"] = kernels_allow(record)


def kernels_allow(record: dict[str, Any]) -> float | None:
    """The fraction of the int8 limit the model would reach if its multiply-accumulate kernels alone took
    time: its ``of_int8_limit`` over their share of ONNX Runtime's profile of its graph (a share, so the
    profile's own minutes do not count). Below a target it says that only faster kernels (or a faster
    machine) meet it; between it and the Segmenter's figure lies what the rest of the graph and the
    Segmenter cost. None without a profile."""
    profile, of_limit = record.get("ort_profile"), record["model"].get("of_int8_limit")
    share = mac_share(profile) if profile else 0.0
    return of_limit / share if of_limit and share else None
