"""One configuration measured in this process: the bare model, the Segmenter, label agreement, the node.

The *node ratio* (:func:`node_ratio`) is defined here once, for every tool that reports it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from bialign_ros.bench.configs import CONFIDENT_MARGIN
from bialign_ros.bench.frames import AGREEMENT_SEED, synthetic_frames
from bialign_ros.bench.node_command import NodeSpec
from bialign_ros.bench.ort_profile import profile_runner
from bialign_ros.node_report import MODEL_GROUPS
from bialign_ros.rate_stats import CpuMeter
from bialign_ros.segmenter import Segmenter
from bialign_ros.timing import hardware_summary, on_worker_thread, peak_rss_mb, time_calls

MIN_SLICE_FRAMES = 8
"""Frames the camera sends in each slice of a node run at least, however slow the configuration: at 1.2x
the model's rate, six or seven label images, whose intervals give the slice's delivered rate."""


def node_ratio(delivered_hz: float, segmenter_hz: Sequence[float]) -> float:
    """The node's delivered rate over the bare Segmenter's, measured just before the node ran, between
    the slices of its run (if it was cut into slices) and just after: the machine's load drifts, so
    each slice is held against the mean of the rates on either side of it, and the slices count alike.
    Near 1 when the ROS plumbing costs (almost) nothing."""
    if len(segmenter_hz) < 2:
        raise ValueError(f"need the Segmenter's rate before and after the node, got {len(segmenter_hz)} rate(s)")
    around = [(a + b) / 2 for a, b in zip(segmenter_hz, segmenter_hz[1:])]
    return delivered_hz / (sum(around) / len(around))


def ratio_cores_allow(node_threads: dict[str, float], node_cpu: float | None, harness_cpu: float | None,
                      segmenter_cpu: float | None, cores: int) -> float | None:
    """The node / Segmenter ratio the cores allowed in a node run: the CPU the node's model threads
    (:data:`~bialign_ros.node_report.MODEL_GROUPS`) could have had, every core-second that its other
    threads and the benchmark's camera and subscribers left (idle ones included), over the CPU of the
    bare Segmenter, whose rate follows the CPU it gets; all in % of one core, ``cores`` x 100 in all.
    Where it is below a target, no scheduling of the node's threads meets that target on this machine
    with these outputs and subscribers. None when a figure is missing."""
    if not node_threads or node_cpu is None or harness_cpu is None or not segmenter_cpu:
        return None
    model = sum(node_threads.get(group, 0.0) for group in MODEL_GROUPS)
    return (100.0 * cores - (node_cpu - model) - harness_cpu) / segmenter_cpu


def network_batch(seg: Segmenter, image: np.ndarray) -> np.ndarray:
    """``image`` resized to ``seg``'s network size, as a batch of one: what the bare graph is timed on."""
    h, w = seg.network_size(*image.shape[:2])
    return np.ascontiguousarray(cv2.resize(image, (w, h)) if (h, w) != image.shape[:2] else image)[None]


def time_bare_model(seg: Segmenter, image: np.ndarray, iters: int, warmup: int,
                    budget_s: float = math.inf) -> dict[str, float]:
    """Time the inference graph alone on an image already at the network's size (``budget_s`` as in
    :func:`~bialign_ros.timing.time_alternating`)."""
    batch = network_batch(seg, image)
    return time_calls(lambda: seg.runner.run(batch), iters, warmup, budget_s)


def time_segmenter(seg: Segmenter, image: np.ndarray, iters: int, warmup: int,
                   budget_s: float = math.inf) -> dict[str, float]:
    """Time the Segmenter end to end: uint8 image in, labels and edges (NumPy) out."""
    return time_calls(lambda: seg.segment(image, edges=True), iters, warmup, budget_s)


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


@dataclass(frozen=True)
class MeasureOptions:
    """One configuration to measure (the options of ``bialign_benchmark`` without ``--configs``)."""

    weights: str
    height: int = 1024
    width: int = 2048
    backend: str = "auto"
    device: str = "auto"
    precision: str = "auto"
    input_scale: float = 1.0
    compile: bool = False
    threads: int = 0
    iters: int = 10
    warmup: int = 2
    time_budget: float = 0.0
    """Seconds one timing may take before it stops at fewer than ``iters`` calls (0: no bound)."""
    config_name: str | None = None
    frames: str | None = None
    """An ``.npz`` of frames (key ``frames``): the first is timed, all are segmented for agreement."""
    reference: str | None = None
    """An ``.npz`` of reference labels and confident pixels to compare the labels with."""
    save_labels: str | None = None
    """Write this configuration's labels and confident pixels here (the reference of the others)."""
    int8_peak_map: tuple[int, int] | None = None
    """With a map size (height, width): the int8 peak on a convolution stack of that map, measured just
    before the bare model's timing and just after the Segmenter's (record ``int8_peak_beside``), so that
    the configuration can be held against the machine's speed of the same minutes."""
    node: bool = False
    node_seconds: float = 20.0
    node_warmup: float = 8.0
    node_rate: float = 0.0
    node_rate_factor: float = 1.2
    node_outputs: tuple[str, ...] = ()
    """Outputs the node runs subscribe to besides the labels and edges (``--node-outputs``)."""
    node_slices: int = 3
    """Slices of the node's run, with the bare Segmenter timed between them (``--node-slices``)."""


def budget(opts: MeasureOptions) -> float:
    """The time budget of one timing of ``opts`` in seconds (infinite when unbounded)."""
    return opts.time_budget if opts.time_budget > 0 else math.inf


def node_seconds(seconds: float, slices: int, rate_hz: float) -> float:
    """How long a node run of ``slices`` slices runs at camera rate ``rate_hz``: ``seconds``, or longer where
    a slow configuration needs it for :data:`MIN_SLICE_FRAMES` frames in each slice."""
    return max(seconds, slices * MIN_SLICE_FRAMES / rate_hz)


def use_threads(threads: int) -> None:
    """Run PyTorch's CPU kernels on ``threads`` threads (0: the library's default)."""
    if threads:
        import torch

        torch.set_num_threads(threads)


def measure_configuration(opts: MeasureOptions) -> dict[str, Any]:
    """Measure one configuration; returns its JSON record."""
    use_threads(opts.threads)
    seg = Segmenter.from_checkpoint(opts.weights, opts.device, opts.precision, opts.input_scale, warmup=False,
                                    backend=opts.backend, compile=opts.compile, threads=opts.threads)
    try:
        return _measure(seg, opts)
    finally:
        seg.close()


def _measure(seg: Segmenter, opts: MeasureOptions) -> dict[str, Any]:
    frames = np.load(opts.frames)["frames"] if opts.frames else synthetic_frames(1, opts.height, opts.width,
                                                                                 AGREEMENT_SEED)
    image = frames[0]
    if image.shape[:2] != (opts.height, opts.width):
        raise ValueError(f"frames are {image.shape[1]}x{image.shape[0]}, not {opts.width}x{opts.height}")
    record: dict[str, Any] = {
        "config": opts.config_name or f"{seg.backend}-{seg.precision}", "arch": seg.meta.arch,
        "height": opts.height, "width": opts.width, "input_scale": opts.input_scale, "backend": seg.backend,
        "device": seg.device, "precision": seg.precision, "compiled": opts.compile,
        "network_size": list(seg.network_size(opts.height, opts.width)), "weights": str(opts.weights),
    }
    before = int8_peak(opts)
    record["model"] = time_bare_model(seg, image, opts.iters, opts.warmup, budget(opts))
    record["segmenter"] = time_segmenter(seg, image, opts.iters, opts.warmup, budget(opts))
    if before is not None:
        record["int8_peak_beside"] = [before, int8_peak(opts)]
    labels = np.stack([seg.segment(f, edges=False).labels for f in frames])
    if opts.save_labels:
        np.savez_compressed(opts.save_labels, labels=labels, confident=confident_pixels(seg, frames))
    record["agreement"] = None
    if opts.reference:
        reference = np.load(opts.reference)
        record["agreement"] = equal_fraction(labels, reference["labels"])
        confident = reference["confident"]
        record["agreement_confident"] = equal_fraction(labels[confident], reference["labels"][confident])
        record["confident_fraction"] = float(confident.mean())
        record["agreement_frames"] = int(len(frames))
    record["memory_peak_mb"] = peak_rss_mb()
    if seg.backend == "onnxruntime" and seg.device == "cpu":
        record["ort_profile"] = profile_runner(seg.runner, network_batch(seg, image))
    record["node"] = measure_node(seg, opts, image) if opts.node else None
    record["hardware"] = hardware_summary()
    return record


def int8_peak(opts: MeasureOptions) -> float | None:
    """The machine's int8 peak in GOP/s on a stack of ``opts.int8_peak_map`` (None without one)."""
    if not opts.int8_peak_map:
        return None
    from bialign_ros.peaks import PEAK_REPEATS, ConvStack, measure_peaks  # imports torch

    height, width = opts.int8_peak_map
    return measure_peaks(ConvStack(height=height, width=width), kinds=("ort_int8",), threads=opts.threads,
                         repeats=PEAK_REPEATS).ort_int8


def node_spec(seg: Segmenter, opts: MeasureOptions) -> NodeSpec:
    """The node that runs what ``seg`` runs: its weights, device, precision, backend and compilation, the
    input scale."""
    return NodeSpec(str(opts.weights), seg.device, seg.precision, seg.backend, opts.input_scale,
                    compile=opts.compile)


def measure_node(seg: Segmenter, opts: MeasureOptions, image: np.ndarray) -> dict[str, Any]:
    """The node on the configuration of ``seg`` (device, precision, backend, input scale), fed ``image``
    above the Segmenter's rate; its delivery figures, memory peak and :func:`node_ratio` against the
    Segmenter computing what the subscribed outputs need (labels and edges; confidence for the
    confidence, free space, grid and points), timed on a worker thread as the node runs it
    (:func:`on_worker_thread`) just before the node ran, between the slices of its run and just after."""
    from bialign_ros.bench.node_harness import run_node
    from bialign_ros.ground_outputs import segmenter_work
    from bialign_ros.ros_domains import pick_domain_id

    subscribed = ("edges", *(o for o in opts.node_outputs if o != "edges"))
    work = segmenter_work(subscribed)

    cpu: list[float] = []

    def segmenter_fps() -> float:
        meter = CpuMeter()
        fps = on_worker_thread(lambda: time_calls(lambda: seg.segment(image, **work), opts.iters, opts.warmup,
                                                  budget(opts)))["fps"]
        cpu.append(meter.percent())
        return fps

    bare = [segmenter_fps()]
    rate = opts.node_rate or opts.node_rate_factor * bare[0]
    seconds = node_seconds(opts.node_seconds, opts.node_slices, rate)
    run = run_node(node_spec(seg, opts), [image], rate, seconds, pick_domain_id("benchmarks"),
                   warmup=opts.node_warmup, outputs=subscribed, slices=opts.node_slices,
                   between=lambda: bare.append(segmenter_fps()))
    bare.append(segmenter_fps())
    threads, node_cpu, harness_cpu = run.node_thread_cpu_percent(), run.node_cpu_percent(), run.harness_cpu_percent()
    node = {**run.delivery(), "memory_peak_mb": run.memory_peak_mb, "cpu_percent": node_cpu,
            "threads_cpu_percent": threads, "harness_cpu_percent": harness_cpu,
            "segmenter_cpu_percent": float(np.mean(cpu)),
            "ratio_cores_allow": ratio_cores_allow(threads, node_cpu, harness_cpu, float(np.mean(cpu)),
                                                   os.cpu_count() or 1),
            "subscribed": ["labels", *subscribed],
            "outputs_received": run.outputs_received[""], "segmenter_work": work, "segmenter_fps_before": bare[0],
            "segmenter_fps_after": bare[-1], "segmenter_fps_around": bare,
            "ratio_to_segmenter": node_ratio(run.delivery()["delivered_hz"], bare)}
    return node

