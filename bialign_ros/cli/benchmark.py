"""``bialign_benchmark``: throughput, latency, memory and label agreement of every backend, side by side.

One configuration (the default): the backend of ``--weights`` (a ``.pt`` checkpoint or an exported
``.onnx``) is timed as the bare model (uint8 image at the network's size in, labels and edges of
the inference graph out: normalisation, forward and argmax) and as the Segmenter end to end
(uint8 image in, labels and edges at the image's size out). ``--node`` adds the ROS node end to
end: a publisher at a fixed rate through real DDS, the node in its own process, delivered rate,
drops and latency. Prints a table and one JSON line.

Several configurations (``--configs``, e.g. ``all``): exports and quantises the checkpoint as
needed (cached under ``--work-dir``), measures the machine's convolution peaks, then runs every
configuration at every ``--sizes`` in a process of its own (clean memory peaks, no shared thread
pools), each compared with the PyTorch fp32 labels on held-out synthetic frames. Writes a JSON
record, a Markdown report (``--markdown``) and a plot of FPS per backend (``--plot``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from bialign_ros.backends.base import BACKENDS, BackendUnavailable
from bialign_ros.checkpoint import CheckpointError
from bialign_ros.export import ExportError
from bialign_ros.model import ARCHITECTURES
from bialign_ros.segmenter import DEVICES, PRECISIONS, Segmenter
from bialign_ros.timing import hardware_summary, peak_rss_mb, process_peak_rss_mb, time_calls

AGREEMENT_SEED = 70_000
"""Synthetic frames for label agreement come from seeds no training, calibration or demo scene uses."""
CALIBRATION_SEED = 90_000
NODE_NAMESPACE = "/bench"
NODE_DOMAINS = range(201, 232)
"""ROS domains of the node benchmark: above the range the test suite uses."""


@dataclass(frozen=True)
class BenchConfig:
    """A backend, precision and options to measure."""

    name: str
    backend: str
    precision: str
    device: str = "cpu"
    compile: bool = False
    float_parts: tuple[str, ...] = ("flow", "logits")
    """int8 only: the parts of the graph kept in floating point (see bialign_ros.quantize)."""

    def unavailable(self) -> str | None:
        """Why this configuration cannot run here, or None."""
        import torch

        if self.device == "cuda" and not torch.cuda.is_available():
            return "no CUDA device on this machine"
        if self.backend == "tensorrt":
            try:
                import tensorrt  # noqa: F401
            except ImportError:
                return "the tensorrt package is not installed"
        return None


CONFIGS: dict[str, BenchConfig] = {c.name: c for c in (
    BenchConfig("torch-fp32", "torch", "fp32"),
    BenchConfig("torch-bf16", "torch", "bf16"),
    BenchConfig("torch-fp32-compiled", "torch", "fp32", compile=True),
    BenchConfig("onnxruntime-fp32", "onnxruntime", "fp32"),
    BenchConfig("onnxruntime-int8", "onnxruntime", "int8"),
    BenchConfig("onnxruntime-int8-uint8-logits", "onnxruntime", "int8", float_parts=("flow",)),
    BenchConfig("torch-fp16-cuda", "torch", "fp16", device="cuda"),
    BenchConfig("tensorrt-fp16", "tensorrt", "fp16", device="cuda"),
    BenchConfig("tensorrt-int8", "tensorrt", "int8", device="cuda"),
)}
REFERENCE_CONFIG = "torch-fp32"
AGREEMENT_TARGET = 0.99
CONFIDENT_MARGIN = 1.0
"""A pixel is confident when fp32's two largest logits differ by at least this much."""
LIMIT_TARGET = 0.65
NODE_TARGET = 0.95


def parse_size(text: str) -> tuple[int, int]:
    """``HxW`` -> (H, W)."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 512x1024 (height x width), got {text!r}") \
            from None
    if h < 8 or w < 8:
        raise argparse.ArgumentTypeError(f"size {text} is too small (at least 8x8)")
    return h, w


# ------------------------------------------------------------------ one configuration, in this process
def synthetic_frames(count: int, height: int, width: int, seed: int) -> np.ndarray:
    """``count`` synthetic street frames (RGB uint8), stacked."""
    from bialign_ros.synthetic import render_scene

    return np.stack([render_scene(seed + i, height, width).image for i in range(count)])


def time_bare_model(seg: Segmenter, image: np.ndarray, iters: int, warmup: int) -> dict[str, float]:
    """Time the inference graph alone on an image already at the network's size."""
    h, w = seg.network_size(*image.shape[:2])
    batch = np.ascontiguousarray(cv2.resize(image, (w, h)) if (h, w) != image.shape[:2] else image)[None]
    return time_calls(lambda: seg.runner.run(batch), iters, warmup)


def time_segmenter(seg: Segmenter, image: np.ndarray, iters: int, warmup: int) -> dict[str, float]:
    """Time the Segmenter end to end: uint8 image in, labels and edges (NumPy) out."""
    return time_calls(lambda: seg.segment(image, edges=True), iters, warmup)


def confident_pixels(seg: Segmenter, frames: np.ndarray) -> np.ndarray:
    """Where the torch backend's two largest logits differ by at least :data:`CONFIDENT_MARGIN`
    (N x H x W bool): labels there do not flip under small numerical differences."""
    masks = []
    for frame in frames:
        logits, _ = seg.forward(seg.preprocess(frame))
        top2 = logits.float().topk(2, dim=1).values[0]
        masks.append((top2[0] - top2[1] >= CONFIDENT_MARGIN).cpu().numpy())
    return np.stack(masks)


def equal_fraction(labels: np.ndarray, reference: np.ndarray) -> float:
    """Fraction of equal labels."""
    if labels.shape != reference.shape:
        raise ValueError(f"labels of shape {labels.shape} cannot be compared with {reference.shape}")
    return float((labels == reference).mean())


def run_single(args: argparse.Namespace, weights: Path) -> dict[str, Any]:
    """Measure one configuration; returns its JSON record."""
    seg = Segmenter.from_checkpoint(weights, args.device, args.precision, args.input_scale, warmup=False,
                                    backend=args.backend, compile=args.compile, threads=args.threads)
    frames = np.load(args.frames)["frames"] if args.frames else synthetic_frames(1, args.height, args.width,
                                                                                 AGREEMENT_SEED)
    image = frames[0]
    if image.shape[:2] != (args.height, args.width):
        raise ValueError(f"frames are {image.shape[1]}x{image.shape[0]}, not {args.width}x{args.height}")
    record: dict[str, Any] = {
        "config": args.config_name or f"{seg.backend}-{seg.precision}", "arch": seg.meta.arch,
        "height": args.height, "width": args.width, "input_scale": args.input_scale, "backend": seg.backend,
        "device": seg.device, "precision": seg.precision, "compiled": args.compile,
        "network_size": list(seg.network_size(args.height, args.width)), "weights": str(weights),
    }
    record["model"] = time_bare_model(seg, image, args.iters, args.warmup)
    record["segmenter"] = time_segmenter(seg, image, args.iters, args.warmup)
    labels = np.stack([seg.segment(f, edges=False).labels for f in frames])
    if args.save_labels:
        np.savez_compressed(args.save_labels, labels=labels, confident=confident_pixels(seg, frames))
    record["agreement"] = None
    if args.reference:
        reference = np.load(args.reference)
        record["agreement"] = equal_fraction(labels, reference["labels"])
        confident = reference["confident"]
        record["agreement_confident"] = equal_fraction(labels[confident], reference["labels"][confident])
        record["confident_fraction"] = float(confident.mean())
        record["agreement_frames"] = int(len(frames))
    record["memory_peak_mb"] = peak_rss_mb()
    record["node"] = None
    if args.node:
        rate = args.node_rate or args.node_rate_factor * record["segmenter"]["fps"]
        # An export holds its precision: the node takes it with 'auto'.
        precision = seg.precision if seg.backend == "torch" else "auto"
        node = measure_node(weights, image, precision, rate, args.node_seconds, args.node_warmup)
        # The bare rate again right after the node, so that a change in the machine's load between
        # the two measurements shows (the ratio is to their mean).
        node["segmenter_fps_after"] = time_segmenter(seg, image, args.iters, args.warmup)["fps"]
        node["ratio_to_segmenter"] = node["delivered_hz"] / (
            (record["segmenter"]["fps"] + node["segmenter_fps_after"]) / 2)
        record["node"] = node
    seg.close()
    return record


# ------------------------------------------------------------------ the node end to end
def measure_node(weights: Path, image: np.ndarray, precision: str, rate_hz: float, seconds: float,
                 warmup: float) -> dict[str, Any]:
    """Run the node on ``weights`` in its own process and feed it ``image`` at ``rate_hz`` through DDS.

    After ``warmup`` seconds of frames, counts for ``seconds`` the label images that come back
    (delivered rate), the frames that do not (drops: the node keeps only the latest frame) and
    the latency from the input stamp to the arrival of the labels.
    """
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from bialign_ros.codec import fill_image
    from bialign_ros.transport import use_transport_profile

    use_transport_profile()
    domain = NODE_DOMAINS[os.getpid() % len(NODE_DOMAINS)]
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               PYTHONUNBUFFERED="1")
    log = tempfile.NamedTemporaryFile("w+", prefix="bialign_bench_node_", suffix=".log", delete=False)
    cmd = [sys.executable, "-m", "bialign_ros.node", "--ros-args", "-r", f"__ns:={NODE_NAMESPACE}",
           "-p", f"weights:={weights}", "-p", "device:=cpu", "-p", f"precision:={precision}"]
    node_proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    node = rclpy.create_node("bialign_bench_camera", namespace=NODE_NAMESPACE, context=context)
    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.VOLATILE)
    pub = node.create_publisher(Image, "image", qos)
    received: list[tuple[float, float]] = []  # (arrival, stamp) in seconds of the node clock

    def on_labels(msg: Image) -> None:
        now = node.get_clock().now().nanoseconds * 1e-9
        received.append((now, msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9))

    node.create_subscription(Image, "segmentation/labels", on_labels, QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE))
    node.create_subscription(Image, "segmentation/edges", lambda _msg: None, QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE))
    msg = fill_image(Image(), np.ascontiguousarray(image), "rgb8")
    msg.header.frame_id = "camera"
    published: list[float] = []

    def publish() -> None:
        msg.header.stamp = node.get_clock().now().to_msg()
        pub.publish(msg)
        published.append(msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9)

    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        deadline = time.monotonic() + 180.0
        while pub.get_subscription_count() == 0 or node.count_publishers("segmentation/labels") == 0:
            if node_proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                raise RuntimeError(f"the node did not come up (exit {node_proc.poll()}):\n"
                                   f"{log.read()[-3000:]}")
            executor.spin_once(timeout_sec=0.1)
        node.create_timer(1.0 / rate_hz, publish)
        start = time.monotonic()
        while time.monotonic() < start + warmup + seconds:
            executor.spin_once(timeout_sec=0.01)
        window_end = published[-1] if published else 0.0
        window_start = window_end - seconds
        # Results of frames still in flight: wait three of the worst latencies seen (at least 1 s).
        worst = max((arrival - stamp for arrival, stamp in received), default=1.0)
        drain = time.monotonic() + min(10.0, max(1.0, 3.0 * worst))
        while time.monotonic() < drain:
            executor.spin_once(timeout_sec=0.05)
        memory = process_peak_rss_mb(node_proc.pid)
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
        if node_proc.poll() is None:
            node_proc.send_signal(2)
            try:
                node_proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(node_proc.pid, 9)
                node_proc.wait(10)
        log.close()
        os.unlink(log.name)
    sent = [t for t in published if window_start < t <= window_end]
    got = [(arrival, stamp) for arrival, stamp in received if window_start < stamp <= window_end]
    latency = np.array([arrival - stamp for arrival, stamp in got]) * 1000.0
    return {
        "publish_hz": rate_hz, "seconds": seconds, "published": len(sent), "delivered": len(got),
        "dropped": len(sent) - len(got), "delivered_hz": len(got) / seconds,
        "latency_p50_ms": float(np.percentile(latency, 50)) if len(got) else None,
        "latency_p99_ms": float(np.percentile(latency, 99)) if len(got) else None,
        "memory_peak_mb": memory,
    }


# ------------------------------------------------------------------ several configurations side by side
def file_digest(path: Path) -> str:
    """A short content hash, to key cached exports."""
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:12]


def prepare_weights(config: BenchConfig, weights: Path, work: Path, calib_size: tuple[int, int],
                    calib_frames: int) -> Path:
    """The file ``config`` runs: the checkpoint itself, or its (cached) ONNX export or int8 quantisation."""
    if config.backend == "torch" or weights.suffix != ".pt":
        return weights
    from bialign_ros.backends.torch_runner import load_inference_model

    stem = f"{weights.stem}-{file_digest(weights)}"
    h, w = calib_size
    if config.precision == "int8":
        out = work / f"{stem}.int8-{'-'.join(config.float_parts) or 'all'}.{h}x{w}.onnx"
        if not out.is_file():
            from bialign_ros.quantize import quantize_model

            model, meta = load_inference_model(weights)
            frames = list(synthetic_frames(calib_frames, h, w, CALIBRATION_SEED))
            report = quantize_model(model, meta, out, frames, dynamic=True, float_parts=config.float_parts)
            print(report.summary(), flush=True)
        return out
    out = work / f"{stem}.{config.precision}.onnx"
    if not out.is_file():
        from bialign_ros.export import export_onnx

        model, meta = load_inference_model(weights)
        export_onnx(model, meta, out, h, w, dynamic=True, fp16=config.precision == "fp16")
    return out


def run_suite(args: argparse.Namespace, weights: Path) -> dict[str, Any]:
    """Every configuration at every size, each in its own process; returns the suite record."""
    from bialign_ros.peaks import ConvStack, Peaks, measure_peaks, model_macs

    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    names = list(CONFIGS) if "all" in args.configs else list(dict.fromkeys(args.configs))
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        raise ValueError(f"unknown configurations {unknown}; choose from all, {', '.join(CONFIGS)}")
    names.sort(key=lambda n: n != REFERENCE_CONFIG)  # the reference labels come first
    sizes = args.sizes or [(args.height, args.width)]
    print("measuring the machine's convolution peaks ...", flush=True)
    stack = ConvStack(height=args.peak_map[0], width=args.peak_map[1])
    peaks = measure_peaks(stack, threads=args.threads, repeats=5)
    suite: dict[str, Any] = {"hardware": hardware_summary(), "peaks": peaks.to_dict(),
                             "peaks_at_start": peaks.to_dict(), "peak_stack": asdict(stack), "sizes": [],
                             "results": [], "unavailable": [], "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    from bialign_ros.backends.torch_runner import load_inference_model

    model, meta = load_inference_model(weights) if weights.suffix == ".pt" else (None, None)
    suite["arch"] = meta.arch if meta else None
    suite["untrained"] = bool(meta and meta.training.get("untrained"))
    suite["weights"] = {"file": weights.name, "heldout_miou": meta.training.get("heldout_miou") if meta else None,
                        "input_scale": meta.training.get("input_scale") if meta else None}
    for name in names:
        reason = CONFIGS[name].unavailable()
        if reason:
            suite["unavailable"].append({"config": name, "reason": reason})
    runnable = [n for n in names if not CONFIGS[n].unavailable()]
    files = {n: prepare_weights(CONFIGS[n], weights, work, sizes[0], args.calib_frames) for n in runnable}
    for h, w in sizes:
        suite["sizes"].append({"height": h, "width": w, "macs": model_macs(model, h, w) if model else None})
        frames_path = work / f"frames_{h}x{w}.npz"
        np.savez(frames_path, frames=synthetic_frames(args.agreement_frames, h, w, AGREEMENT_SEED))
        reference = work / f"reference_{h}x{w}.npz"
        for name in runnable:
            config = CONFIGS[name]
            print(f"{w}x{h} {name} ...", flush=True)
            out = work / f"record_{name}_{h}x{w}.json"
            cmd = [sys.executable, "-m", "bialign_ros.cli.benchmark", "--weights", str(files[name]),
                   "--backend", config.backend, "--precision", config.precision, "--device", config.device,
                   "--height", str(h), "--width", str(w), "--iters", str(args.iters),
                   "--warmup", str(args.warmup), "--threads", str(args.threads), "--frames", str(frames_path),
                   "--record-out", str(out), "--config-name", name]
            cmd += ["--save-labels", str(reference)] if name == REFERENCE_CONFIG else (
                ["--reference", str(reference)] if reference.is_file() else [])
            if config.compile:
                cmd.append("--compile")
            if args.node and not config.compile:
                cmd += ["--node", "--node-seconds", str(args.node_seconds),
                        "--node-warmup", str(args.node_warmup)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0 or not out.is_file():
                suite["unavailable"].append({"config": name, "size": [h, w],
                                             "reason": f"failed: {proc.stderr.strip()[-400:]}"})
                continue
            suite["results"].append(json.loads(out.read_text()))
    if args.node and args.cameras > 1:
        suite["cameras"] = measure_cameras(args, suite, files, work)
    # Peaks again at the end: a shared machine can be busy at any moment, and a peak measured low
    # would flatter every ratio to it. The higher of the two runs is the limit.
    print("measuring the peaks again ...", flush=True)
    again = measure_peaks(stack, threads=args.threads, repeats=5)
    suite["peaks_at_end"] = again.to_dict()
    apply_limits(suite, Peaks(**{k: max(v, again.to_dict()[k]) for k, v in peaks.to_dict().items()}))
    return suite


def best_result(suite: dict[str, Any], height: int, width: int) -> dict[str, Any] | None:
    """The fastest configuration through the Segmenter at ``height`` x ``width`` whose labels agree
    with fp32 on at least :data:`AGREEMENT_TARGET` (fp32 itself counts)."""
    rows = [r for r in suite["results"] if (r["height"], r["width"]) == (height, width)
            and (r["config"] == REFERENCE_CONFIG or (r.get("agreement") or 0.0) >= AGREEMENT_TARGET)]
    return max(rows, key=lambda r: r["segmenter"]["fps"]) if rows else None


def measure_cameras(args: argparse.Namespace, suite: dict[str, Any], files: dict[str, Path],
                    work: Path) -> dict[str, Any] | None:
    """``bialign_node_benchmark --cameras N`` with the best configuration at the first size: one camera,
    then N cameras in one node, each published at the node benchmark's rate factor times the Segmenter
    rate. Returns its JSON record (with the configuration's name), or None when it failed."""
    h, w = suite["sizes"][0]["height"], suite["sizes"][0]["width"]
    best = best_result(suite, h, w)
    if best is None:
        return None
    config = CONFIGS[best["config"]]
    out = work / f"cameras_{args.cameras}_{h}x{w}.json"
    rate = args.node_rate or args.node_rate_factor * best["segmenter"]["fps"]
    print(f"{w}x{h} {best['config']}: {args.cameras} cameras in one node ...", flush=True)
    cmd = [sys.executable, "-m", "bialign_ros.cli.node_benchmark", "--weights", str(files[best["config"]]),
           "--width", str(w), "--height", str(h), "--input-scale", "1.0", "--cameras", str(args.cameras),
           "--rate", f"{rate:.3f}", "--duration", str(args.node_seconds), "--device", config.device,
           # an export holds its precision: the node takes it with 'auto'
           "--precision", config.precision if config.backend == "torch" else "auto", "--json", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not out.is_file():
        suite["unavailable"].append({"config": f"{best['config']} x{args.cameras} cameras", "size": [h, w],
                                     "reason": f"failed: {proc.stderr.strip()[-400:]}"})
        return None
    return {"config": best["config"], **json.loads(out.read_text())}


def cameras_section(suite: dict[str, Any]) -> list[str]:
    """Markdown lines on the several-cameras run, if there was one."""
    rec = suite.get("cameras")
    if not rec:
        return []
    one, multi = rec["one_camera"], rec["multi_camera"]
    per_cam = ", ".join(f"{c['output_median_rate_hz']:.2f}" for c in multi["per_camera"].values())
    return [
        f"## {rec['cameras']} cameras in one node", "",
        f"`bialign_node_benchmark --cameras {rec['cameras']}` with `{rec['config']}` at "
        f"{rec['height']}x{rec['width']}, each camera publishing at {rec['rate_hz']:.1f} Hz: first one camera, "
        f"then {rec['cameras']} in one node, whose frames that arrive together run in one forward pass.", "",
        "| | delivered Hz | per camera Hz | latency | frames batched / forward passes |", "|---|---|---|---|---|",
        f"| one camera | {one['output_median_rate_hz']:.2f} | – | {one['latency_text']} | – |",
        f"| {rec['cameras']} cameras | {multi['combined_rate_hz']:.2f} | {per_cam} | {multi['latency_text']} | "
        f"{multi['batched_frames']} / {multi['forward_passes']} |", "",
        f"Combined rate / one camera's: **{rec['combined_vs_one_camera']:.2f}** "
        f"({_met(rec['combined_vs_one_camera'], 1.0)}). The bare Segmenter runs a batch of {rec['cameras']} at "
        f"{rec['bare_batch_vs_single']:.2f}x the frames per second of single images: that is all batching "
        "buys on this CPU; each camera gets its share of one camera's rate, at a higher latency.", ""]


def apply_limits(suite: dict[str, Any], peaks: Any) -> None:
    """Store ``peaks``, each size's frame-rate limits, and every figure's fraction of them."""
    from bialign_ros.peaks import frame_limit

    suite["peaks"] = peaks.to_dict()
    for size in suite["sizes"]:
        size["limits_fps"] = {p: frame_limit(size["macs"], peaks.limit(p)) if size["macs"] else None
                              for p in ("fp32", "bf16", "int8")}
    for record in suite["results"]:
        limit = next(s["limits_fps"] for s in suite["sizes"]
                     if (s["height"], s["width"]) == (record["height"], record["width"]))
        for stage in ("model", "segmenter"):
            fps, own = record[stage]["fps"], limit.get(record["precision"])
            record[stage]["of_int8_limit"] = fps / limit["int8"] if limit["int8"] else None
            record[stage]["of_own_limit"] = fps / own if own else None


# ------------------------------------------------------------------ reports
def weights_note(suite: dict[str, Any]) -> str:
    """': FILE, held-out mIoU M at input scale S' from the checkpoint's training record, or nothing."""
    info = suite.get("weights") or {}
    if not info.get("file"):
        return ""
    note = f": `{info['file']}`"
    if info.get("heldout_miou") is not None:
        note += f", held-out synthetic mIoU {100 * info['heldout_miou']:.1f} %"
        if info.get("input_scale") is not None:
            note += f" at input scale {info['input_scale']:g}"
    return note


def confident_note(suite: dict[str, Any]) -> str:
    """' (N % of the pixels of these frames)' from the records, or nothing."""
    shares = [r["confident_fraction"] for r in suite["results"] if r.get("confident_fraction") is not None]
    return f" ({100 * min(shares):.0f} to {100 * max(shares):.0f} % of the pixels)" if shares else ""


def _fmt(value: Any, spec: str = ".1f", none: str = "–") -> str:
    return none if value is None else format(value, spec)


def print_record(record: dict[str, Any], hw: dict[str, Any]) -> None:
    """The table of one configuration."""
    print(f"{record['arch']} {record['width']}x{record['height']} (input scale {record['input_scale']}) on "
          f"{record['device']} {record['precision']}, backend {record['backend']}; {hw['cpu']}, "
          f"{hw['torch_threads']} threads")
    print(f"{'stage':<22}{'FPS':>8}{'mean ms':>10}{'p50 ms':>10}{'p99 ms':>10}")
    for name, key in (("model (graph alone)", "model"), ("segmenter end to end", "segmenter")):
        r = record[key]
        print(f"{name:<22}{r['fps']:>8.2f}{r['mean_ms']:>10.1f}{r['p50_ms']:>10.1f}{r['p99_ms']:>10.1f}")
    node = record.get("node")
    if node:
        print(f"{'node end to end':<22}{node['delivered_hz']:>8.2f}  delivered of {node['publish_hz']:.1f} "
              f"Hz published, {node['dropped']} dropped, latency p50 {_fmt(node['latency_p50_ms'])} ms")
    if record.get("agreement") is not None:
        print(f"label agreement with the reference: {100 * record['agreement']:.3f}%")


def markdown_report(suite: dict[str, Any]) -> str:
    """``docs/benchmarks.md``: hardware, peaks, and per size one row per configuration."""
    hw, peaks, stack = suite["hardware"], suite["peaks"], suite["peak_stack"]
    lines = [
        "# Benchmarks", "",
        f"Generated by `make bench` (`bialign_benchmark --configs ...`) on {suite['started']}. Every figure "
        "below comes from this one run, configurations one after another, each in a process of its own.", "",
        f"- CPU: {hw['cpu']} ({hw['cores']} logical / {hw['physical_cores']} physical cores; "
        f"{', '.join(hw.get('cpu_features', [])) or 'no AVX-512'}); no GPU" if "gpu" not in hw else
        f"- CPU: {hw['cpu']}; GPU: {hw['gpu']}",
        f"- torch {hw['torch']} ({hw['torch_threads']} threads), onnxruntime {hw.get('onnxruntime', '–')}",
        f"- model: `{suite['arch']}`" + (" (UNTRAINED weights: agreement figures mean little)"
                                         if suite.get("untrained") else f" (trained weights{weights_note(suite)})"),
        "", "## The machine's limits", "",
        f"Throughput of a stack of {stack['layers']} {stack['channels']}->{stack['channels']} 3x3 "
        f"convolutions on {stack['height']}x{stack['width']} (GOP/s, 2 ops per multiply-add), measured at "
        "the start and at the end of the run; the higher of the two is the limit. A model's frame-rate "
        "limit is this divided by its own operations per frame.",
        "",
        "| PyTorch fp32 | PyTorch bf16 | ONNX Runtime fp32 | ONNX Runtime int8 |", "|---|---|---|---|",
        f"| {_fmt(peaks['torch_fp32'], '.0f')} | {_fmt(peaks['torch_bf16'], '.0f')} | "
        f"{_fmt(peaks['ort_fp32'], '.0f')} | {_fmt(peaks['ort_int8'], '.0f')} |", "",
    ]
    for size in suite["sizes"]:
        h, w, lim = size["height"], size["width"], size["limits_fps"]
        macs = size["macs"]
        lines += [f"## {h}x{w} (height x width)", ""]
        if macs:
            lines += [f"{macs / 1e9:.1f} GMACs per frame. Frame-rate limits: fp32 {_fmt(lim['fp32'])} FPS, "
                      f"bf16 {_fmt(lim['bf16'])} FPS, int8 {_fmt(lim['int8'])} FPS.", ""]
        lines += ["| configuration | model FPS | model p50 / p99 ms | Segmenter FPS | Segmenter p50 / p99 ms "
                  "| of int8 limit | of own limit | memory MB | agreement with fp32 | on confident pixels "
                  "| node FPS | node / Segmenter | node drops | node p50 ms |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in (r for r in suite["results"] if (r["height"], r["width"]) == (h, w)):
            m, s, n = r["model"], r["segmenter"], r.get("node") or {}
            agree = "reference" if r["config"] == REFERENCE_CONFIG else (
                _fmt(100 * r["agreement"], ".2f") + " %" if r.get("agreement") is not None else "–")
            sure = "–" if r.get("agreement_confident") is None else f"{100 * r['agreement_confident']:.2f} %"
            lines.append(
                f"| {r['config']} | {m['fps']:.2f} | {m['p50_ms']:.0f} / {m['p99_ms']:.0f} | "
                f"{s['fps']:.2f} | {s['p50_ms']:.0f} / {s['p99_ms']:.0f} | "
                f"{_fmt(s.get('of_int8_limit'), '.2f')}x | "
                f"{_fmt(s.get('of_own_limit'), '.2f')}x | {r['memory_peak_mb']:.0f} | {agree} | {sure} | "
                f"{_fmt(n.get('delivered_hz'), '.2f')} | {_fmt(n.get('ratio_to_segmenter'), '.2f')} | "
                f"{n.get('dropped', '–')} of {n.get('published', '–')} | "
                f"{_fmt(n.get('latency_p50_ms'), '.0f')} |")
        lines.append("")
    lines += targets_section(suite)
    lines += cameras_section(suite)
    if suite["unavailable"]:
        lines += ["## Not measured here", ""]
        lines += [f"- `{u['config']}`" + (f" at {u['size'][0]}x{u['size'][1]}" if "size" in u else "")
                  + f": {u['reason']}" for u in suite["unavailable"]]
        lines.append("")
    lines += [
        "## How to read it", "",
        "- *model*: the inference graph alone on a uint8 image at the network's size (normalisation, "
        "forward, argmax, edge sigmoid); *Segmenter*: uint8 RGB image in, labels and edges at the "
        "image's size out, through `Segmenter.segment`; *node*: a camera publisher at a fixed rate "
        "(above the Segmenter's rate) through DDS to `bialign_node` in another process; delivered "
        "labels per second, frames dropped by its latest-frame-wins queue, stamp-to-arrival latency; "
        "*node / Segmenter*: the delivered rate over the mean of the Segmenter's rate measured just "
        "before and just after the node ran (the machine's load drifts).",
        "- *of int8 limit*: Segmenter FPS divided by the int8 frame-rate limit; *of own limit*: by the "
        "limit of the configuration's own precision.",
        "- *agreement*: fraction of pixels whose label equals PyTorch fp32's, over held-out synthetic "
        "frames (seeds no training or calibration frame uses); *on confident pixels*: the same over the "
        f"pixels where fp32's two largest logits differ by at least {CONFIDENT_MARGIN:g}"
        + confident_note(suite) + ": it tells whether a configuration's disagreements stay where fp32 "
        "itself hesitates.",
        "- *memory*: peak resident memory of the process running the configuration (node: of the node "
        "process).",
        "- The machine is shared: absolute figures move by 20 % or more between runs; compare within "
        "one run.", "",
        "## Reproduce", "",
        "```bash",
        "make bench                                   # this page, on the trained demo weights",
        "bialign_export --weights W.pt --format onnx --dynamic --out W.onnx           # onnxruntime-fp32",
        "bialign_quantize --weights W.pt --calib frames/ --out W.int8.onnx            # onnxruntime-int8",
        "bialign_quantize --weights W.pt --calib frames/ --out W.int8.onnx --float flow --float logits",
        "bialign_benchmark --weights W.int8.onnx --height 512 --width 1024 --node    # one configuration",
        "```", "",
        "Every `--weights` (`bialign_segment`, `bialign_benchmark`, the node's `weights` parameter) takes "
        "the `.onnx` files as well; the backend follows from the file.", "",
    ]
    return "\n".join(lines)


def targets_section(suite: dict[str, Any]) -> list[str]:
    """Markdown lines: per size, the fastest configuration whose labels agree with fp32 on at least
    :data:`AGREEMENT_TARGET`, against the targets for the Segmenter and the node."""
    lines = ["## Against the targets", "",
             f"Targets: the best backend through the Segmenter at >= {LIMIT_TARGET}x the int8 limit with >= "
             f"{100 * AGREEMENT_TARGET:.0f} % label agreement with fp32; the node's delivered rate >= "
             f"{NODE_TARGET}x the Segmenter's with the same backend.", "",
             "| size | best configuration | Segmenter FPS | of int8 limit | agreement | node / Segmenter |",
             "|---|---|---|---|---|---|"]
    for size in suite["sizes"]:
        best = best_result(suite, size["height"], size["width"])
        if best is None:
            continue
        s, node = best["segmenter"], best.get("node") or {}
        ratio, of_limit = node.get("ratio_to_segmenter"), s.get("of_int8_limit")
        agree = "reference" if best["config"] == REFERENCE_CONFIG else f"{100 * best['agreement']:.2f} %"
        lines.append(
            f"| {size['height']}x{size['width']} | {best['config']} | {s['fps']:.2f} | "
            f"{_fmt(of_limit, '.2f')}x ({_met(of_limit, LIMIT_TARGET)}) | {agree} | "
            f"{_fmt(ratio, '.2f')} ({_met(ratio, NODE_TARGET)}) |")
    lines += ["", "For reference (quoted from the project's issue, measured on this kind of machine in the "
              "same way, not in this run): the fastest published models of similar accuracy run in int8 "
              "at about 8.9 FPS and 7.0 FPS at 512x1024, for the network alone.", ""]
    return lines


def _met(value: float | None, target: float) -> str:
    return "not measured" if value is None else ("met" if value >= target else "not met")


def plot_fps(suite: dict[str, Any], path: Path) -> Path:
    """Bar chart of FPS per configuration (model, Segmenter, node) per size, with the limits."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = suite["sizes"]
    fig, axes = plt.subplots(1, len(sizes), figsize=(6.5 * len(sizes), 4.5), squeeze=False)
    for ax, size in zip(axes[0], sizes):
        rows = [r for r in suite["results"] if (r["height"], r["width"]) == (size["height"], size["width"])]
        x = np.arange(len(rows))
        stages = {"model": [r["model"]["fps"] for r in rows],
                  "Segmenter": [r["segmenter"]["fps"] for r in rows],
                  "node": [(r.get("node") or {}).get("delivered_hz", 0.0) for r in rows]}
        for i, (label, values) in enumerate(stages.items()):
            ax.bar(x + (i - 1) * 0.27, values, 0.27, label=label)
        for precision, style in (("int8", "--"), ("fp32", ":")):
            limit = size["limits_fps"].get(precision)
            if limit:
                ax.axhline(limit, linestyle=style, color="black", linewidth=1)
                ax.text(len(rows) - 0.5, limit, f" {precision} limit", va="bottom", ha="right", fontsize=8)
        ax.set_xticks(x, [r["config"] for r in rows], rotation=25, ha="right", fontsize=8)
        ax.set_ylabel("frames per second")
        ax.set_title(f"{size['height']}x{size['width']} (height x width)")
        ax.legend(fontsize=8)
    fig.suptitle(f"{suite['arch']} on {suite['hardware']['cpu']}", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ------------------------------------------------------------------ command line
def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of bialign_benchmark."""
    p = argparse.ArgumentParser(prog="bialign_benchmark", description=__doc__.splitlines()[0])
    p.add_argument("--weights", type=Path, default=None,
                   help="checkpoint (.pt) or export (.onnx); without it untrained weights of --arch "
                        "are timed")
    p.add_argument("--arch", choices=ARCHITECTURES, default="bialign_dfnet2")
    p.add_argument("--height", type=int, default=1024)
    p.add_argument("--width", type=int, default=2048)
    p.add_argument("--backend", default="auto", choices=BACKENDS, help="backend of one configuration")
    p.add_argument("--device", default="auto", help=f"one of {', '.join(DEVICES)}")
    p.add_argument("--precision", default="auto", choices=PRECISIONS)
    p.add_argument("--input-scale", type=float, default=1.0)
    p.add_argument("--compile", action="store_true", help="torch backend: wrap the graph in torch.compile")
    p.add_argument("--iters", type=int, default=10, help="timed iterations per measurement")
    p.add_argument("--warmup", type=int, default=2, help="untimed iterations first")
    p.add_argument("--threads", type=int, default=0,
                   help="torch and ONNX Runtime CPU threads (0: the libraries' defaults / physical cores)")
    p.add_argument("--node", action="store_true", help="also measure the ROS node end to end (needs rclpy)")
    p.add_argument("--node-seconds", type=float, default=20.0, help="measured window of the node run")
    p.add_argument("--node-warmup", type=float, default=8.0, help="seconds of frames before the window")
    p.add_argument("--node-rate", type=float, default=0.0,
                   help="publish rate in Hz (0: see --node-rate-factor)")
    p.add_argument("--node-rate-factor", type=float, default=1.2,
                   help="publish at this multiple of the measured Segmenter rate, so the node never waits")
    suite = p.add_argument_group("several configurations side by side")
    suite.add_argument("--configs", nargs="+", default=None, metavar="NAME",
                       help=f"'all' or some of: {', '.join(CONFIGS)}")
    suite.add_argument("--sizes", nargs="+", type=parse_size, default=None, metavar="HxW",
                       help="sizes to measure (default: --height x --width); exports are traced and "
                            "calibrated at the first")
    suite.add_argument("--peak-map", type=parse_size, default=(128, 256), metavar="HxW",
                       help="feature-map size of the convolution stack that measures the peaks")
    suite.add_argument("--agreement-frames", type=int, default=4, help="held-out synthetic frames per size")
    suite.add_argument("--calib-frames", type=int, default=8, help="synthetic calibration frames for int8")
    suite.add_argument("--cameras", type=int, default=2,
                       help="with --node: also this many cameras in one node, with the best configuration at "
                            "the first size (below 2: not measured)")
    suite.add_argument("--work-dir", type=Path, default=Path("bench_out"), help="exports, records, frames")
    suite.add_argument("--json", type=Path, default=None, help="write the suite record here")
    suite.add_argument("--markdown", type=Path, default=None, help="write the Markdown report here")
    suite.add_argument("--plot", type=Path, default=None, help="write the FPS plot (PNG) here")
    # Internal: how the suite drives one configuration in a child process.
    for flag in ("--frames", "--reference", "--save-labels", "--record-out"):
        p.add_argument(flag, type=Path, default=None, help=argparse.SUPPRESS)
    p.add_argument("--config-name", default=None, help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = build_parser().parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        weights = args.weights
        if weights is None:
            from bialign_ros.weights import untrained_checkpoint

            weights = untrained_checkpoint(Path(tmp) / "untrained.pt", args.arch)
        try:
            if args.configs:
                suite = run_suite(args, weights)
            else:
                record = run_single(args, weights)
        except (CheckpointError, ExportError, ValueError, BackendUnavailable) as exc:
            print(f"bialign_benchmark: error: {exc}", file=sys.stderr)
            return 2
    if args.configs:
        text = json.dumps(suite)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(text)
        if args.markdown:
            args.markdown.parent.mkdir(parents=True, exist_ok=True)
            args.markdown.write_text(markdown_report(suite))
        if args.plot:
            plot_fps(suite, args.plot)
        for record in suite["results"]:
            print_record(record, suite["hardware"])
        print(text)
        return 0
    record["hardware"] = hardware_summary()
    if args.record_out:
        args.record_out.write_text(json.dumps(record))
    print_record(record, record["hardware"])
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
