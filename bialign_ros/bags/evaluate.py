"""Offline evaluation of a bag: every frame through the model, deterministically, no drops.

Writes ``metrics.json`` (mIoU and per-class IoU with :mod:`bialign_ros.metrics`, the one
implementation ``training.evaluate`` also uses; boundary F-scores; latency), ``outputs.mcap``
(the input frames with every image output of the node, stamped like the input) and the visual report.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from bialign_ros.bags.boundary import BoundaryEvaluator
from bialign_ros.bags.io import BagMessage, BagReader, BagWriter
from bialign_ros.bags.matching import Pair, StampMatcher
from bialign_ros.bags.messages import (
    IMAGE,
    IMAGE_TYPES,
    image_message,
    message_labels,
    stamp_to_ns,
)
from bialign_ros.bags.report import ReportSample, write_report
from bialign_ros.calibration import ConfidenceCalibration, FreeSpaceIoU
from bialign_ros.classes import class_lookup, no_free_space_note
from bialign_ros.codec import CodecError, message_to_rgb8
from bialign_ros.metrics import ConfusionMatrix, summarize
from bialign_ros.node_interface import OUTPUT_TOPICS as NODE_TOPICS
from bialign_ros.outputs import IMAGE_OUTPUTS, OutputImage, OutputSettings, render_outputs
from bialign_ros.segmenter import Segmenter
from bialign_ros.timing import hardware_summary, latency_summary

OUTPUT_TOPICS = {name: f"/{NODE_TOPICS[name]}" for name in IMAGE_OUTPUTS}
"""Topics of ``outputs.mcap`` besides the input image topic: every image output of the node, under
the node's names in the root namespace."""
METRICS_FILE = "metrics.json"
OUTPUT_BAG = "outputs.mcap"
SAMPLE_WIDTH = 480
"""Width (pixels) of the sample frames kept for the report."""


@dataclass(frozen=True)
class EvalOptions:
    """Settings of :func:`evaluate_bag`."""

    image_topic: str
    gt_topic: str | None = None
    device: str = "auto"
    precision: str | None = None
    """None: fp32 for a ``.pt`` checkpoint (reference numbers, as ``training.evaluate``), an
    exported model's own precision otherwise."""
    backend: str = "auto"
    input_scale: float = 1.0
    stamp_tolerance_ms: float = 2.0
    """Ground truth pairs with the frame of the nearest stamp within this many milliseconds."""
    boundary_tolerance_px: float = 3.0
    edge_threshold: float = 0.5
    overlay_alpha: float = 0.5
    free_space_classes: tuple[str, ...] = OutputSettings.free_space_classes
    free_space_min_confidence: float = OutputSettings.free_space_min_confidence

    @property
    def output_settings(self) -> OutputSettings:
        """How the outputs of ``outputs.mcap`` are drawn."""
        return OutputSettings(self.overlay_alpha, self.free_space_classes, self.free_space_min_confidence)
    samples: int = 6
    """Frames shown in the report's grid (evenly spread)."""
    max_frames: int = 0
    """Stop after this many frames (0: all)."""
    progress: bool = True


@dataclass
class EvalResult:
    """What :func:`evaluate_bag` computed and wrote."""

    metrics: dict[str, Any]
    files: dict[str, Path]
    damage: str | None
    """The error found in the bag (a truncated or damaged file), or None for a complete bag."""


@dataclass
class _Frame:
    message: BagMessage
    decoded: Any


def _sample_indices(total: int | None, count: int) -> set[int]:
    if count <= 0:
        return set()
    if not total:
        return set(range(count))
    return {int(i) for i in np.linspace(0, total - 1, min(count, total)).round()}


def _thumbnail(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    if w <= SAMPLE_WIDTH:
        return image
    size = (SAMPLE_WIDTH, max(1, round(h * SAMPLE_WIDTH / w)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


class _OutputBag:
    """``outputs.mcap`` as one MCAP file: written as a bag directory beside it, then moved into place.

    The bag directory is named after the file's stem, so the storage file inside it (and the
    name recorded in its embedded rosbag2 metadata) already has the final name.
    """

    def __init__(self, path: Path, image_topic: str, image_type: str) -> None:
        self.path = path
        self._staging = path.parent / f".{path.name}.partial"
        shutil.rmtree(self._staging, ignore_errors=True)
        self._bag = BagWriter(self._staging / path.stem, "mcap")
        self.image_topic = image_topic
        self._bag.add_topic(image_topic, image_type)
        for topic in OUTPUT_TOPICS.values():
            self._bag.add_topic(topic, IMAGE)

    def write(self, frame: _Frame, outputs: list[OutputImage]) -> None:
        stamp, frame_id = stamp_to_ns(frame.decoded.header.stamp), frame.decoded.header.frame_id
        log_time = frame.message.log_time
        self._bag.write_raw(self.image_topic, log_time, frame.message.data)
        for output in outputs:
            self._bag.write(OUTPUT_TOPICS[output.name], log_time,
                            image_message(output.array, output.encoding, stamp, frame_id))

    def close(self) -> dict[str, int]:
        self._bag.close()
        (self._bag.path / f"{self.path.stem}.mcap").replace(self.path)
        shutil.rmtree(self._staging)
        return dict(self._bag.counts)

    def discard(self) -> None:
        self._bag.abort()
        shutil.rmtree(self._staging, ignore_errors=True)


class _Evaluation:
    """The state of one run: model, accumulators, output bag and progress bar."""

    def __init__(self, seg: Segmenter, options: EvalOptions, outputs: _OutputBag, total: int | None) -> None:
        self.seg = seg
        self.options = options
        self.outputs = outputs
        meta = seg.meta
        self.confusion = ConfusionMatrix(meta.num_classes, meta.ignore_index) if options.gt_topic else None
        self.calibration = ConfidenceCalibration(ignore_index=meta.ignore_index)
        self.free_space = FreeSpaceIoU(class_lookup(options.free_space_classes, meta.class_names), meta.ignore_index)
        self.boundary = BoundaryEvaluator(options.boundary_tolerance_px, options.edge_threshold,
                                          meta.ignore_index)
        self.sample_at = _sample_indices(total, options.samples)
        self.processed = self.with_truth = self.truth_without_frame = self.undecodable = 0
        self.first_decode_error: str | None = None
        self.latencies: list[float] = []
        self.samples: list[ReportSample] = []
        self.bar = tqdm(total=total, desc="evaluating", unit="frame", disable=not options.progress)

    @property
    def done(self) -> bool:
        return 0 < self.options.max_frames <= self.processed

    def process(self, pair: Pair[_Frame, Any]) -> None:
        """Run the model on a frame, write its outputs and score it against its ground truth."""
        if pair.frame is None:
            self.truth_without_frame += 1
            return
        if self.done:
            return
        frame = pair.frame
        try:
            rgb = message_to_rgb8(frame.decoded)
        except CodecError as exc:
            self.undecodable += 1
            self.first_decode_error = self.first_decode_error or f"frame at {pair.frame_stamp} ns: {exc}"
            return
        if not self.latencies:
            # Warm-up at the frame size, so latencies are steady-state.
            self.seg.segment(rgb, edges=True, confidence=True)
        start = time.perf_counter()
        result = self.seg.segment(rgb, edges=True, confidence=True)
        self.latencies.append(time.perf_counter() - start)
        outputs = render_outputs(self.seg, rgb, result, OUTPUT_TOPICS, self.options.output_settings)
        self.outputs.write(frame, outputs)
        truth = None
        if pair.truth is not None and self.confusion is not None:
            truth = message_labels(pair.truth)
            if truth.shape != result.labels.shape:
                raise ValueError(f"ground truth at stamp {pair.truth_stamp} ns is {truth.shape[1]}x"
                                 f"{truth.shape[0]} but its frame is {rgb.shape[1]}x{rgb.shape[0]}")
            self.confusion.update(truth, result.labels)
            self.boundary.update(truth, result.labels, result.edges)
            self.calibration.update(truth, result.labels, result.confidence)
            self.free_space.update(truth, self.options.output_settings.free_space(result, self.seg.meta.class_names))
            self.with_truth += 1
        if self.processed in self.sample_at:
            colored_truth = None if truth is None else _thumbnail(self.seg.colorize(truth))
            arrays = {output.name: output.array for output in outputs}
            self.samples.append(ReportSample(pair.frame_stamp, _thumbnail(arrays["overlay"]),
                                             _thumbnail(arrays["edges"]), colored_truth))
        self.processed += 1
        if self.confusion is not None and self.with_truth:
            self.bar.set_postfix(mIoU=f"{100 * self.confusion.miou():.1f}%", refresh=False)
        self.bar.update()

    def run(self, reader: BagReader) -> None:
        """Stream the image and ground-truth topics through the stamp matcher into :meth:`process`."""
        options = self.options
        matcher: StampMatcher[_Frame, Any] = StampMatcher(round(options.stamp_tolerance_ms * 1e6))
        topics = [options.image_topic] + ([options.gt_topic] if options.gt_topic else [])
        try:
            for message in reader.messages(topics):
                decoded = message.decode()
                stamp = stamp_to_ns(decoded.header.stamp)
                if message.topic == options.image_topic:
                    pairs = matcher.add_frame(stamp, _Frame(message, decoded))
                else:
                    pairs = matcher.add_truth(stamp, decoded)
                for pair in pairs:
                    self.process(pair)
                if self.done:
                    break
            for pair in matcher.finish():
                self.process(pair)
        finally:
            self.bar.close()


def evaluate_bag(bag: str | Path, weights: str | Path, out_dir: str | Path,
                 options: EvalOptions) -> EvalResult:
    """Run ``weights`` on every frame of ``options.image_topic`` in ``bag`` and write the results.

    Raises :class:`bialign_ros.bags.io.BagError` (missing topic, wrong type, unreadable bag),
    :class:`bialign_ros.checkpoint.CheckpointError` or ValueError before anything is written.
    A truncated or damaged bag is evaluated as far as it reads; :attr:`EvalResult.damage` and
    ``metrics.json`` then name the problem.
    """
    out_dir = Path(out_dir)
    with BagReader(bag) as reader:
        image_info = reader.topic(options.image_topic, IMAGE_TYPES)
        if options.gt_topic is not None:
            reader.topic(options.gt_topic, (IMAGE,))
        precision = options.precision or ("fp32" if Path(weights).suffix == ".pt" else "auto")
        seg = Segmenter.from_checkpoint(weights, device=options.device, precision=precision,
                                        input_scale=options.input_scale, warmup=False,
                                        backend=options.backend)
        free_space = options.output_settings.for_model(seg.meta.class_names).free_space_classes
        free_space_note = no_free_space_note(options.free_space_classes, seg.meta.class_names)
        options = replace(options, free_space_classes=free_space)
        total = image_info.count
        if options.max_frames > 0:
            total = options.max_frames if total is None else min(total, options.max_frames)
        out_dir.mkdir(parents=True, exist_ok=True)
        outputs = _OutputBag(out_dir / OUTPUT_BAG, options.image_topic, image_info.msgtype)
        run = _Evaluation(seg, options, outputs, total)
        try:
            run.run(reader)
        except BaseException:
            outputs.discard()
            raise
        counts = outputs.close()
        damage, notes = reader.damage, list(reader.notes)
        if free_space_note:
            notes.append(f"free space: {free_space_note}")

    metrics = _metrics(bag, weights, run, counts, damage, notes)
    (out_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2))
    meta = seg.meta
    files = write_report(out_dir, metrics, meta.class_names, meta.class_colors,
                         None if run.confusion is None else run.confusion.matrix,
                         [1000.0 * s for s in run.latencies], run.samples)
    files.update(metrics=out_dir / METRICS_FILE, outputs=out_dir / OUTPUT_BAG)
    return EvalResult(metrics, files, damage)


def _metrics(bag: str | Path, weights: str | Path, run: _Evaluation, counts: dict[str, int],
             damage: str | None, notes: list[str]) -> dict[str, Any]:
    options, seg = run.options, run.seg
    metrics: dict[str, Any] = {
        "bag": str(bag),
        "image_topic": options.image_topic,
        "gt_topic": options.gt_topic,
        "weights": str(weights),
        "model": {"arch": seg.meta.arch, "untrained": bool(seg.meta.training.get("untrained")),
                  "backend": seg.backend, "device": seg.device, "precision": seg.precision,
                  "input_scale": seg.input_scale},
        "frames": {"processed": run.processed, "with_ground_truth": run.with_truth,
                   "without_ground_truth": run.processed - run.with_truth,
                   "ground_truth_without_frame": run.truth_without_frame, "undecodable": run.undecodable},
        "stamp_tolerance_ms": options.stamp_tolerance_ms,
    }
    if run.first_decode_error:
        metrics["frames"]["first_decode_error"] = run.first_decode_error
    if run.confusion is not None:
        metrics.update(summarize(run.confusion.matrix, seg.meta.class_names))
        metrics["confusion_matrix"] = run.confusion.matrix.tolist()
        metrics["boundary"] = run.boundary.summary()
        metrics["confidence_calibration"] = run.calibration.summary()
        metrics["free_space"] = {"iou": _finite(run.free_space.iou()), "classes": list(options.free_space_classes),
                                 "min_confidence": options.free_space_min_confidence}
    metrics["latency"] = latency_summary(run.latencies) if run.latencies else None
    metrics["hardware"] = hardware_summary()
    metrics["outputs"] = {"bag": OUTPUT_BAG, "messages": counts}
    metrics["complete"] = damage is None
    metrics["bag_error"] = damage
    metrics["notes"] = notes
    return metrics


def _finite(value: float) -> float | None:
    return None if value != value else value  # NaN (no free space anywhere) -> null in JSON
