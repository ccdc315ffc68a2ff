"""The interface every backend implements, and the choice of backend from a weights file."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import NamedTuple

import numpy as np

BACKENDS: tuple[str, ...] = ("auto", "torch", "onnxruntime", "tensorrt")
"""``auto`` follows the weights file: ``.onnx`` -> onnxruntime, ``.engine``/``.plan`` -> tensorrt,
anything else -> torch."""

MIN_DYNAMIC_SIDE = 16
"""Smallest height/width of a dynamic-size export (two 1/8 cells: the exporter fixes sizes of 1)."""
MAX_DYNAMIC_SIDE = 8192

_SUFFIX_BACKEND = {".onnx": "onnxruntime", ".engine": "tensorrt", ".plan": "tensorrt"}
_BACKEND_SUFFIXES = {"onnxruntime": (".onnx",), "tensorrt": (".engine", ".plan", ".onnx")}


class BackendUnavailable(RuntimeError):
    """The requested backend cannot run here (package missing, no GPU)."""


def backend_for_file(path: str | Path, backend: str = "auto") -> str:
    """The backend that runs ``path``: ``backend`` itself, checked against the file type, or from the suffix.

    Raises ValueError for an unknown backend or a file the backend cannot read, naming what to do.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    suffix = Path(path).suffix.lower()
    if backend == "auto":
        return _SUFFIX_BACKEND.get(suffix, "torch")
    refused = suffix in _SUFFIX_BACKEND if backend == "torch" else suffix not in _BACKEND_SUFFIXES[backend]
    if refused:
        hint = {
            "torch": "the torch backend runs bialign_ros checkpoints (.pt)",
            "onnxruntime": "export the checkpoint first: "
                           "bialign_export --weights W.pt --format onnx --out W.onnx",
            "tensorrt": "give a TensorRT engine (.engine/.plan) or the .onnx file to build one from",
        }[backend]
        raise ValueError(f"backend {backend!r} cannot run {Path(path).name}: {hint}")
    return backend


def physical_cores() -> int:
    """Physical CPU cores this process may run on (hyper-threads not counted); at least 1."""
    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))
    cores = set()
    for cpu in allowed:
        try:
            topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
            package = (topology / "physical_package_id").read_text().strip()
            cores.add(f"{package}:{(topology / 'core_id').read_text().strip()}")
        except OSError:
            cores.add(str(cpu))
    return max(1, len(cores))


def stream_threads(streams: int) -> int:
    """The model's intra-op threads for each of ``streams`` frames in inference at once: the physical
    cores shared out, at least 1; 0 (every core, the backends' default) for a single stream."""
    return 0 if streams == 1 else max(1, physical_cores() // streams)


def cpu_flags() -> frozenset[str]:
    """The instruction-set flags this CPU reports (``/proc/cpuinfo``; empty where it cannot be read)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
"""CPU flags with which ONNX Runtime multiplies uint8 activations by int8 weights in exact int32 sums."""


def exact_weight_bits(flags: frozenset[str] | None = None) -> int:
    """The widest int8 weights ONNX Runtime multiplies exactly on a CPU with ``flags`` (default: this
    one): 8 with VNNI or AMX, else 7. Without them its ``vpmaddubsw`` sums two uint8 x int8 products
    in int16, which saturates with full-range weights (255 x 127 x 2 > 32767)."""
    return 8 if (cpu_flags() if flags is None else flags) & set(VNNI_FLAGS) else 7


class RunOutputs(NamedTuple):
    """What :meth:`Runner.run` returns for a batch, each N x H x W at the network's input size."""

    labels: np.ndarray
    """uint8 train IDs."""
    edges: np.ndarray
    """float32 edge probability."""
    confidence: np.ndarray | None
    """float32 softmax probability of the winning class, or None when not asked for."""
    logits: np.ndarray | None = None
    """The class logits behind the labels when asked for, in the graph's layout: (N h/8 w/8) x
    (64 classes) or N x classes x H x W (see :class:`bialign_ros.upsample.NetworkLogits`)."""
    edge_logits: np.ndarray | None = None
    """The edge logit behind the edges when asked for: (N h/8 w/8) x 64 or N x H x W."""


class Runner(ABC):
    """Runs the inference graph on a batch of images; the Segmenter does the rest.

    ``run`` takes N x H x W x 3 uint8 RGB (C-contiguous) at the network's input size and returns
    :class:`RunOutputs`; the confidence only when asked for (it costs a softmax over the classes),
    the logits only when asked for (to bring the outputs to another size).
    """

    name: str = ""
    """Backend name: torch, onnxruntime or tensorrt."""
    device: str = "cpu"
    precision: str = "fp32"
    fixed_size: tuple[int, int] | None = None
    """(height, width) the graph was built for, or None when it takes any size."""
    size_multiple: int = 1
    """Height and width must be multiples of this (when the size is not fixed)."""
    max_batch: int | None = None
    """Largest batch one call takes, or None for any."""
    has_logits: bool = True
    """Whether ``run`` can return the logits (files exported before they existed cannot)."""
    warming_up: bool = False
    """True while the Segmenter warms the backend up: its frame is no camera's, so warnings about the
    frames a model is given wait for real ones."""

    @abstractmethod
    def run(self, images: np.ndarray, confidence: bool = False, logits: bool = False) -> RunOutputs:
        """Labels, edge probability and (with ``confidence``) confidence of a uint8 N x H x W x 3 RGB batch;
        with ``logits`` also the class and edge logits."""

    @abstractmethod
    def close(self) -> None:
        """Free the model and its memory."""

    def describe(self) -> str:
        """One line for logs: backend, device, precision and size constraints."""
        size = f"fixed {self.fixed_size[0]}x{self.fixed_size[1]}" if self.fixed_size else (
            f"any size (multiples of {self.size_multiple})" if self.size_multiple > 1 else "any size")
        return f"{self.name} on {self.device}, {self.precision}, input {size}"


def check_batch(images: np.ndarray) -> None:
    """ValueError unless ``images`` is a C-contiguous uint8 N x H x W x 3 array."""
    if images.ndim != 4 or images.shape[3] != 3 or images.dtype != np.uint8:
        raise ValueError(f"expected a uint8 N x H x W x 3 batch, got {images.dtype} array of shape "
                         f"{images.shape}")
