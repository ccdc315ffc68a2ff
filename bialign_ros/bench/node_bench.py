"""The node benchmark: camera frames at a fixed rate through the node, next to the bare Segmenter.

1. Times the bare :class:`Segmenter` in this process, before the node runs, between the slices of
   the one-camera run (the camera pauses, the node idles) and after it, so that the node and the
   bare Segmenter are measured over the same minutes of a machine whose speed drifts: one image
   per call, and with several cameras also a batch of one image per camera per call
   (``segment_batch``, one forward pass).
2. Runs the node through :mod:`bialign_ros.bench.node_harness`: one camera first, then (with
   ``cameras`` above 1) one node serving all cameras (namespaces cam0 .. camN-1, frames of
   all cameras published at the same instants, as hardware-synchronised cameras deliver them).
3. Reports the frames the node received, processed and dropped (from its ``/diagnostics``),
   the delivered rate, the rate from the median interval between outputs, end-to-end latency
   and the :func:`~bialign_ros.bench.measure.node_ratio`. With several cameras: each camera's
   rate, their sum (the combined rate) and its ratio to the one-camera rate, which is what
   batching buys.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from bialign_ros.bench.measure import node_ratio, ratio_cores_allow
from bialign_ros.bench.node_command import NodeSpec
from bialign_ros.bench.node_harness import NodeRun, run_node
from bialign_ros.cli.output_collector import Arrival, OutputSummary
from bialign_ros.ground_outputs import segmenter_work
from bialign_ros.rate_stats import CpuMeter
from bialign_ros.segmenter import Segmenter
from bialign_ros.synthetic import render_scene
from bialign_ros.timing import latency_summary, on_worker_thread


@dataclass(frozen=True)
class NodeBenchOptions:
    """What the node benchmark runs (the options of ``bialign_node_benchmark``)."""

    weights: str
    width: int = 2048
    height: int = 1024
    rate: float = 30.0
    """Camera rate in Hz, of each camera."""
    duration: float = 20.0
    """Seconds of publishing, per run."""
    input_scale: float = 0.25
    cameras: int = 1
    device: str = "auto"
    precision: str = "auto"
    backend: str = "auto"
    compile: bool = False
    """torch backend: the node and the bare Segmenter run the graph through torch.compile."""
    inference_streams: int = 1
    """The node's frames in inference at once; the bare Segmenter runs one at a time on every core, as
    ``Segmenter.segment`` does."""
    reliability: str = "reliable"
    bare_frames: int = 10
    """Calls timed for each bare Segmenter rate."""
    slices: int = 3
    """Slices of the one-camera run, the bare Segmenter timed before, between and after them."""
    domain_id: int = 0
    outputs: tuple[str, ...] = ()
    """Outputs subscribed besides the labels (the node computes optional outputs only while subscribed)."""

    def spec(self, cameras: tuple[str, ...] = ()) -> NodeSpec:
        """The node these options run, serving ``cameras``."""
        return NodeSpec(self.weights, self.device, self.precision, self.backend, self.input_scale, cameras,
                        self.compile, self.inference_streams)


class BareSegmenter:
    """The Segmenter the node runs, loaded once in this process and timed on demand (:meth:`times`)."""

    def __init__(self, opts: NodeBenchOptions, batches: list[list[np.ndarray]]) -> None:
        self.opts, self.batches = opts, batches
        self.seg = Segmenter.from_checkpoint(opts.weights, device=opts.device, precision=opts.precision,
                                             input_scale=opts.input_scale, backend=opts.backend,
                                             compile=opts.compile)
        self.work = segmenter_work(opts.outputs)
        self.cpu_percent: list[float] = []
        """This process's CPU (% of one core) during each :meth:`times`: the bare Segmenter's use of the cores."""

    def times(self) -> list[list[float]]:
        """Seconds per Segmenter.segment_batch call on each of the batches (``bare_frames`` calls each),
        computing what the node computes for the subscribed outputs (labels; edges and confidence when
        an output needs them), so that the node's ratio is its own cost, not that of more work asked
        of the model. Timed on a worker thread, as the node runs inference (:func:`on_worker_thread`).
        """

        def run() -> list[list[float]]:
            times: list[list[float]] = [[] for _ in self.batches]
            for images, record in zip(self.batches, times):
                self.seg.segment_batch(images, **self.work)
                for _ in range(self.opts.bare_frames):
                    start = time.perf_counter()
                    self.seg.segment_batch(images, **self.work)
                    record.append(time.perf_counter() - start)
            return times

        meter = CpuMeter()
        times = on_worker_thread(run)
        self.cpu_percent.append(meter.percent())
        return times

    def close(self) -> None:
        """Free the model."""
        self.seg.close()


def median_and_mean_hz(times: list[float], frames: int = 1) -> tuple[float, float]:
    """(median, mean) frames per second of calls that took ``times`` seconds for ``frames`` frames each."""
    return frames / float(np.median(times)), frames * len(times) / sum(times)


def _counts(status: dict[str, Any]) -> dict[str, int]:
    return {"node_received": int(status["frames_received"]), "node_dropped": int(status["frames_dropped"]),
            "node_processed": int(status["frames_processed"])}


def _measured_summary(arrivals: list[Arrival]) -> OutputSummary:
    """Rates and latency of the label images of the measured windows, in order of arrival: the frames
    before (warm-up, and the first labels, which wait while a compiled graph compiles) are left out."""
    return OutputSummary.of(sorted(arrivals, key=lambda a: a.at))


def _camera_result(run: NodeRun, camera: str) -> dict[str, Any]:
    """Counts over the whole run; rates and latency over the measured windows (see :func:`_measured_summary`)."""
    summary = _measured_summary(run.measured_arrivals(camera))
    return {"published": len(run.published_ns), "first_labels_frames": run.first_frames,
            **_counts(run.status(camera)), "outputs": len(run.arrivals[camera]),
            "outputs_received": run.outputs_received[camera],
            "delivered_hz": run.delivery(camera)["delivered_hz"], "output_rate_hz": summary.rate_hz,
            "output_median_rate_hz": summary.median_rate_hz, "latency_ms": summary.latency_ms,
            "latency_text": summary.latency_text()}


def one_camera_result(run: NodeRun) -> dict[str, Any]:
    """Counts, rates, latency, the node process's CPU (also by thread group), this process's (camera and
    subscribers) and the node's own mean times per frame (its inference thread's decoding and forward
    pass, its publishing thread's rendering and sending) of a single-camera run."""
    status = run.status()
    return {**_camera_result(run, ""), "node_cpu_percent": run.node_cpu_percent(),
            "node_threads_cpu_percent": run.node_thread_cpu_percent(), "harness_cpu_percent": run.harness_cpu_percent(),
            "processing_mean_ms": float(status.get("processing_mean_ms", "nan")),
            "publishing_mean_ms": float(status.get("publishing_mean_ms", "nan"))}


def several_cameras_result(run: NodeRun) -> dict[str, Any]:
    """Per camera and combined counts, rates and latency of a run of one node serving several cameras."""
    per_camera = {cam: _camera_result(run, cam) for cam in run.arrivals}
    for result in per_camera.values():
        del result["latency_text"]
    node_status = run.status()
    measured = _measured_summary([a for cam in run.arrivals for a in run.measured_arrivals(cam)])
    return {"published": len(run.published_ns) * len(per_camera), "first_labels_frames": run.first_frames,
            **_counts(node_status),
            "outputs": sum(len(arrivals) for arrivals in run.arrivals.values()),
            "combined_rate_hz": sum(c["output_median_rate_hz"] for c in per_camera.values()),
            "combined_overall_rate_hz": sum(c["output_rate_hz"] for c in per_camera.values()),
            "combined_delivered_hz": sum(c["delivered_hz"] for c in per_camera.values()),
            "forward_passes": int(node_status["forward_passes"]),
            "batched_frames": int(node_status["batched_frames"]),
            "latency_ms": measured.latency_ms, "latency_text": measured.latency_text(),
            "per_camera": per_camera}


def run_node_benchmark(opts: NodeBenchOptions) -> dict[str, Any]:
    """The node benchmark's record: the one-camera result (with ``cameras`` > 1 under ``one_camera``, next
    to ``multi_camera`` and the comparison) and the bare Segmenter rates."""
    if opts.cameras < 1:
        raise ValueError(f"cameras must be at least 1, got {opts.cameras}")
    cameras = tuple(f"cam{i}" for i in range(opts.cameras))
    images = [render_scene(seed=i, height=opts.height, width=opts.width).image for i in range(len(cameras))]
    calls = [[images[0]]] + ([images] if opts.cameras > 1 else [])
    bare = BareSegmenter(opts, calls)
    try:
        rounds = [bare.times()]  # before, between the slices and after the one-camera run
        one = one_camera_result(run_node(opts.spec(), images[:1], opts.rate, opts.duration, opts.domain_id,
                                         reliability=opts.reliability, outputs=opts.outputs, slices=opts.slices,
                                         between=lambda: rounds.append(bare.times())))
        rounds.append(bare.times())
        multi = None
        if opts.cameras > 1:
            multi = several_cameras_result(run_node(opts.spec(cameras), images, opts.rate, opts.duration,
                                                    opts.domain_id, reliability=opts.reliability,
                                                    outputs=opts.outputs))
            rounds.append(bare.times())
    finally:
        bare.close()
    bare_hz, bare_mean = median_and_mean_hz([t for r in rounds for t in r[0]])
    around = [latency_summary(r[0])["fps"] for r in rounds[:opts.slices + 1]]
    one.update(width=opts.width, height=opts.height, rate_hz=opts.rate, input_scale=opts.input_scale,
               inference_streams=opts.inference_streams, subscribed=["labels", *opts.outputs],
               bare_segmenter_work=bare.work, slices=opts.slices,
               bare_segmenter_hz=bare_hz, bare_segmenter_mean_hz=bare_mean, segmenter_hz_before=around[0],
               segmenter_hz_after=around[-1], segmenter_hz_around=around,
               bare_segmenter_cpu_percent=float(np.mean(bare.cpu_percent[:opts.slices + 1])),
               ratio=node_ratio(one["delivered_hz"], around))
    one["ratio_cores_allow"] = ratio_cores_allow(one["node_threads_cpu_percent"], one["node_cpu_percent"],
                                                 one["harness_cpu_percent"], one["bare_segmenter_cpu_percent"],
                                                 os.cpu_count() or 1)
    if multi is None:
        return one
    batch, batch_mean = median_and_mean_hz([t for r in rounds for t in r[1]], opts.cameras)
    return {"cameras": opts.cameras, "width": opts.width, "height": opts.height, "rate_hz": opts.rate,
            "input_scale": opts.input_scale, "subscribed": ["labels", *opts.outputs],
            "one_camera": one, "multi_camera": multi,
            "bare_segmenter_hz": bare_hz, "bare_batch_frames_hz": batch, "bare_batch_frames_mean_hz": batch_mean,
            "bare_batch_vs_single": batch / bare_hz,
            "combined_vs_one_camera": multi["combined_rate_hz"] / one["output_median_rate_hz"],
            "combined_vs_one_camera_overall": multi["combined_overall_rate_hz"] / one["output_rate_hz"]}

