"""The ONNX Runtime backend: exported (fp32/fp16) or quantised (int8) graphs on CPU, CUDA or TensorRT EPs."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from bialign_ros.backends.base import (
    BackendUnavailable,
    Runner,
    RunOutputs,
    check_batch,
    exact_weight_bits,
    physical_cores,
)
from bialign_ros.backends.contract import (
    CONFIDENCE_OUTPUT,
    INPUT_NAME,
    LOGITS_OUTPUTS,
    OUTPUT_NAMES,
    ExportError,
    parse_metadata,
)

LOG = logging.getLogger(__name__)
LABELS_AND_EDGES = OUTPUT_NAMES[:2]


def session_options(threads: int = 0):
    """ONNX Runtime session options for this machine: ``threads`` intra-op threads (0: the physical
    cores), one inter-op thread, every graph optimisation, the memory arena and pattern reuse, and
    worker threads that sleep instead of spinning between parallel sections."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads or physical_cores()
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.enable_cpu_mem_arena = True
    so.enable_mem_pattern = True
    so.log_severity_level = 3
    # Spinning workers hold the cores that the node's DDS and executor threads need while a frame
    # is in flight: measured at 2048x1024 int8, the node delivered 0.92x the bare rate with
    # spinning and 0.96x without; the bare rate itself does not change.
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return so


def ort_session(model: bytes | str, threads: int, providers: list[str], profile_prefix: str | None = None):
    """An ONNX Runtime session of ``model`` (a path or serialised ONNX) with :func:`session_options`;
    with ``profile_prefix``, ONNX Runtime's profiler on, writing its JSON there (see ``end_profiling``)."""
    import onnxruntime as ort

    so = session_options(threads)
    if profile_prefix is not None:
        so.enable_profiling = True
        so.profile_file_prefix = profile_prefix
    return ort.InferenceSession(model, so, providers=providers)


GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
"""The GPU execution providers, in the order they are tried."""


def gpu_providers() -> list[str]:
    """The GPU execution providers this onnxruntime has, in :data:`GPU_PROVIDERS` order (empty without one)."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    return [p for p in GPU_PROVIDERS if p in available]


def providers_for(device: str) -> list[str]:
    """Execution providers for ``cpu`` or ``cuda[:N]``: TensorRT, then CUDA, then CPU, as installed.

    Raises BackendUnavailable when a CUDA device is asked for and this onnxruntime has no GPU provider.
    """
    import onnxruntime as ort

    if not device.startswith("cuda"):
        return ["CPUExecutionProvider"]
    gpu = gpu_providers()
    if not gpu:
        raise BackendUnavailable(f"device {device!r}: this onnxruntime has no CUDA or TensorRT execution "
                                 f"provider (installed: {', '.join(ort.get_available_providers())}); "
                                 "install onnxruntime-gpu")
    return [*gpu, "CPUExecutionProvider"]


class OrtRunner(Runner):
    """Runs an exported ONNX file (see :mod:`bialign_ros.export`) with ONNX Runtime.

    ``meta`` and ``info`` hold the model metadata and the graph description stored in the file.
    """

    name = "onnxruntime"

    def __init__(self, path: str | Path, device: str = "cpu", threads: int = 0) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - onnxruntime is a pinned dependency
            raise BackendUnavailable("the onnxruntime backend needs the onnxruntime package") from exc
        path = Path(path)
        if not path.is_file():
            raise ExportError(f"ONNX file not found: {path}")
        self.providers = providers_for(device)
        try:
            self.session = ort_session(str(path), threads, self.providers)
        except (ort.capi.onnxruntime_pybind11_state.Fail, ort.capi.onnxruntime_pybind11_state.InvalidGraph,
                ort.capi.onnxruntime_pybind11_state.InvalidProtobuf) as exc:
            raise ExportError(f"cannot load ONNX file {path}: {exc}") from exc
        self.meta, self.info = parse_metadata(self.session.get_modelmeta().custom_metadata_map, path)
        self.path = path
        self.device = device
        self.precision = self.info.precision
        self.fixed_size = self.info.fixed_size
        self.size_multiple = self.info.size_multiple
        self.threads = self.session.get_session_options().intra_op_num_threads
        bits = self.info.notes.get("weight_bits")
        if self.providers == ["CPUExecutionProvider"] and isinstance(bits, int) and bits > exact_weight_bits():
            LOG.warning(f"{path.name} has {bits}-bit int8 weights, which ONNX Runtime multiplies exactly only "
                        "on CPUs with VNNI or AMX; this CPU has neither, so some products saturate and the "
                        "labels stray further from fp32: quantise with bialign_quantize --weight-bits 7 for it")
        calibrated = self.info.notes.get("calibration_size")
        quantised_pooling = bool(calibrated) and not self.info.notes.get("pooling_in_float")
        self.calibration_size: tuple[int, int] | None = tuple(calibrated) if quantised_pooling else None
        """(height, width) of the frames an int8 file with a quantised pyramid pooling was calibrated on,
        below which its labels stray (None: any size; not recorded, or not int8)."""
        self._below_calibration_warned: set[tuple[int, int]] = set()
        outputs = {o.name for o in self.session.get_outputs()}
        self.has_confidence = CONFIDENCE_OUTPUT in outputs
        self.has_logits = set(LOGITS_OUTPUTS) <= outputs
        self._lean: Any = None if outputs - set(LABELS_AND_EDGES) else self.session

    def lean_session(self):
        """The session that computes labels and edges only: on the CPU, the graph cut down to them
        (:meth:`labels_and_edges_model`).

        ONNX Runtime runs every node of a graph whatever outputs a call fetches, and the confidence's
        softmax over every pixel is 3-8 % of a frame (int8 at 512x1024: 197 against 213 ms). The cut
        graph is made on first use (about a second; the Segmenter's warm-up does it). It is the whole
        graph on a GPU provider (TensorRT would build a second engine).
        """
        if self._lean is None:
            model = self.labels_and_edges_model()
            self._lean = self.session if isinstance(model, str) else ort_session(model, self.threads, self.providers)
        return self._lean

    def labels_and_edges_model(self) -> bytes | str:
        """The graph :meth:`lean_session` runs: on the CPU provider, the file's graph cut down to the labels
        and edges (serialised ONNX); the file's path on a GPU provider, without the ``onnx`` package (the
        ONNX-only install), and when the graph cannot be cut (a warning says why)."""
        if self.providers != ["CPUExecutionProvider"]:
            return str(self.path)
        try:
            import onnx
            import onnx.utils
        except ImportError:
            return str(self.path)
        try:
            return onnx.utils.Extractor(onnx.load_model(str(self.path))).extract_model(
                [INPUT_NAME], list(LABELS_AND_EDGES)).SerializeToString()
        except Exception as exc:  # any failure leaves the whole graph, which is correct, only slower
            LOG.warning("%s: running the whole graph for labels and edges (cannot cut it: %s)", self.path.name, exc)
            return str(self.path)

    def run(self, images: np.ndarray, confidence: bool = False, logits: bool = False) -> RunOutputs:
        check_batch(images)
        self._warn_below_calibration(images.shape[1], images.shape[2])
        if confidence and not self.has_confidence:
            raise ValueError(f"{self.path.name} has no confidence output (exported before it existed): export "
                             f"and quantise it again to get segmentation/confidence and free space")
        if logits and not self.has_logits:
            raise ValueError(f"{self.path.name} has no logits outputs (exported before them)")
        names = [*LABELS_AND_EDGES, *([CONFIDENCE_OUTPUT] if confidence else []), *(LOGITS_OUTPUTS if logits else [])]
        session = self.session if confidence or logits else self.lean_session()
        found = dict(zip(names, session.run(names, {INPUT_NAME: np.ascontiguousarray(images)})))
        as_f32 = {name: value.astype(np.float32, copy=False) for name, value in found.items() if name != "labels"}
        return RunOutputs(found["labels"], as_f32["edges"], as_f32.get(CONFIDENCE_OUTPUT),
                          *(as_f32.get(name) for name in LOGITS_OUTPUTS))

    def _warn_below_calibration(self, height: int, width: int) -> None:
        """Warn once per size when an int8 file whose pyramid pooling is quantised (made before
        ``bialign_quantize`` kept it in float) runs on frames smaller than those it was calibrated on.

        Its pooling matrices, which grow as the frame shrinks, are then clipped: with the
        full-resolution synthetic weights, a file calibrated at 512x1024 kept 97.0 % of fp32's confident
        labels at half its calibration size and 81.8 % at a quarter, against 100 % at it and above
        (docs/speed_findings.md, *Label agreement*)."""
        if (self.warming_up or self.calibration_size is None
                or (height, width) in self._below_calibration_warned):
            return
        ch, cw = self.calibration_size
        if height < ch or width < cw:
            self._below_calibration_warned.add((height, width))
            LOG.warning(f"{self.path.name} was calibrated on {cw}x{ch} frames and runs at {width}x{height} "
                        "(the camera's size times input_scale): its pyramid pooling is quantised, which clips "
                        "below its calibration size, so its labels agree less with fp32; quantise it again "
                        "with this bialign_quantize, which keeps the pooling in float for every size")

    def close(self) -> None:
        self.session = self._lean = None
