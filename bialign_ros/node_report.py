"""What the node reports about itself once a second: values, status level and a log line.

Pure Python, so the wording and the thresholds are tested without ROS; the node copies the
result into a ``diagnostic_msgs/DiagnosticStatus`` and its periodic log line. A node serving
several cameras reports once for the node and once per camera, each with this class.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

OK, WARN, ERROR = 0, 1, 2
"""Levels, equal to ``diagnostic_msgs/DiagnosticStatus`` OK, WARN and ERROR."""


THREAD_GROUPS = ("inference", "model_pool", "publishing", "executor", "middleware", "helpers")
"""The groups of the node's threads whose CPU the node reports (``cpu_<group>_percent``): the threads that
decode frames and run the model (one per inference stream); native threads other than the middleware's
(the model's intra-op pool: ONNX Runtime's or PyTorch's OpenMP workers); the thread that renders and
publishes the outputs; the executor (subscription callbacks, timers, services); Fast DDS's own threads;
the Python worker threads of the exact upsampling and the depth projector."""

MODEL_GROUPS = ("inference", "model_pool")
"""The :data:`THREAD_GROUPS` that run the model; the others are the node's plumbing around it."""


def thread_cpu_key(group: str) -> str:
    """The diagnostics key of a :data:`THREAD_GROUPS` entry's CPU: ``cpu_<group>_percent``."""
    return f"cpu_{group}_percent"


def thread_group(python_name: str | None, kernel_name: str, pipeline: tuple[str, ...]) -> str:
    """The :data:`THREAD_GROUPS` entry of a thread of the node from its Python name (None: a thread not
    started by Python), its kernel name and the pipeline's thread names (its workers, then its second
    stage: :attr:`~bialign_ros.batch_pipeline.BatchPipeline.thread_names`)."""
    if python_name is None:
        return "middleware" if kernel_name.startswith("dds.") else "model_pool"
    if python_name == threading.main_thread().name:
        return "executor"
    if python_name in pipeline[:-1]:
        return "inference"
    if pipeline and python_name == pipeline[-1]:
        return "publishing"
    return "helpers"


@dataclass(frozen=True)
class NodeReport:
    """A snapshot of the node's (or of one of its cameras') state and counters."""

    state: str
    """Lifecycle state label: unconfigured, inactive or active."""
    input_topic: str
    subscription_qos: str
    input_rate_hz: float
    output_rate_hz: float
    latency_mean_ms: float
    latency_p99_ms: float
    stamp_age_ms: float
    """Node clock at publication minus the input stamp, mean of recent frames (transport included)."""
    frames_received: int
    frames_processed: int
    frames_dropped: int
    frames_rejected: int
    frames_failed: int
    frames_waiting: int
    seconds_since_input: float
    """Seconds since the last input frame (or since activation when none came); NaN when inactive."""
    no_frame_warning: float
    device: str
    precision: str
    backend: str
    model: str
    camera: str = ""
    """The camera this report is about; empty for the node as a whole."""
    cameras: tuple[str, ...] = ()
    """The cameras the node serves (parameter ``cameras``), in the node's report."""
    silent_cameras: tuple[str, ...] = ()
    """Cameras without input for more than ``no_frame_warning`` seconds, in the node's report."""
    forward_passes: int = 0
    """Network runs (one per batch of same-size frames) that took frames of this report's scope."""
    batched_frames: int = 0
    """Frames that shared their forward pass with frames of other cameras."""
    processing_mean_ms: float = float("nan")
    """Mean time an inference thread spends on a batch (decoding, forward pass, labels); with several
    inference streams each batch runs on its share of the cores, so this exceeds the interval between labels."""
    publishing_mean_ms: float = float("nan")
    """Mean time the publishing thread spends on a frame (rendering and sending its outputs); it
    overlaps the next frame's inference."""
    outputs_rendered: tuple[tuple[str, int], ...] = ()
    """(output, count) of the optional output images computed so far (only while wanted)."""
    cpu_percent: float = float("nan")
    """CPU time of the node's process since its previous report per second, in % of one core (200:
    two cores busy); in the node's report only."""
    cpu_threads: tuple[tuple[str, float], ...] = ()
    """(group, CPU %) of the node's threads by group (:data:`THREAD_GROUPS`), over the same second; in the
    node's report only, on Linux."""

    @property
    def silent(self) -> bool:
        """True while active with no input for more than ``no_frame_warning`` seconds (when enabled)."""
        return self.no_frame_warning > 0 and self.seconds_since_input > self.no_frame_warning

    def level(self) -> tuple[int, str]:
        """Diagnostic level and message: WARN while idle, inactive or rejecting input."""
        if self.state != "active":
            return WARN, f"node is {self.state}"
        if self.silent_cameras:
            return WARN, (f"no input from camera(s) {', '.join(self.silent_cameras)} for more than "
                          f"{self.no_frame_warning:g} s")
        if self.silent:
            return WARN, f"no input on {self.input_topic} for {self.seconds_since_input:.0f} s"
        if self.frames_failed:
            return ERROR, f"inference failed on {self.frames_failed} frame(s)"
        if self.frames_rejected:
            return WARN, f"{self.frames_rejected} bad input frame(s) dropped"
        return OK, "segmenting"

    def key_values(self) -> list[tuple[str, str]]:
        """Name/value pairs for ``DiagnosticStatus.values``."""
        scope = [("camera", self.camera)] if self.camera else []
        if self.cameras:
            scope.append(("cameras", ", ".join(self.cameras)))
        return [
            *scope,
            ("state", self.state),
            ("input_topic", self.input_topic),
            ("subscription_qos", self.subscription_qos),
            ("input_rate_hz", f"{self.input_rate_hz:.2f}"),
            ("output_rate_hz", f"{self.output_rate_hz:.2f}"),
            ("latency_mean_ms", _ms(self.latency_mean_ms)),
            ("latency_p99_ms", _ms(self.latency_p99_ms)),
            ("stamp_age_ms", _ms(self.stamp_age_ms)),
            ("frames_received", str(self.frames_received)),
            ("frames_processed", str(self.frames_processed)),
            ("frames_dropped", str(self.frames_dropped)),
            ("frames_rejected", str(self.frames_rejected)),
            ("frames_failed", str(self.frames_failed)),
            ("frames_waiting", str(self.frames_waiting)),
            ("forward_passes", str(self.forward_passes)),
            ("batched_frames", str(self.batched_frames)),
            ("processing_mean_ms", _ms(self.processing_mean_ms)),
            ("publishing_mean_ms", _ms(self.publishing_mean_ms)),
            *((f"rendered_{name}", str(count)) for name, count in self.outputs_rendered),
            *([] if self.camera else [("cpu_percent", _ms(self.cpu_percent)),
                                      *((thread_cpu_key(group), _ms(cpu)) for group, cpu in self.cpu_threads)]),
            ("device", self.device),
            ("precision", self.precision),
            ("backend", self.backend),
            ("model", self.model),
        ]

    def log_line(self) -> str:
        """The periodic log line: rates, latency and counters in one sentence."""
        batching = (f", {self.forward_passes} forward passes ({self.batched_frames} frames batched)"
                    if self.cameras else "")
        return (
            f"in {self.input_rate_hz:.1f} Hz, out {self.output_rate_hz:.1f} Hz, latency mean "
            f"{_ms(self.latency_mean_ms)} ms p99 {_ms(self.latency_p99_ms)} ms, frames: "
            f"{self.frames_received} received, {self.frames_processed} processed, "
            f"{self.frames_dropped} dropped (latest wins), {self.frames_rejected} rejected, "
            f"{self.frames_failed} failed{batching}; {self.model} on {self.device} ({self.precision}, "
            f"{self.backend})"
        )


def _ms(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.1f}"


_TEXT_KEYS = frozenset({"camera", "cameras", "state", "input_topic", "subscription_qos", "device",
                        "precision", "backend", "model"})


def parse_key_values(pairs: list[tuple[str, str]]) -> dict[str, float | str]:
    """Inverse of :meth:`NodeReport.key_values` for readers: numbers as floats ('n/a' is NaN)."""
    return {key: value if key in _TEXT_KEYS else float("nan") if value == "n/a" else float(value)
            for key, value in pairs}
