"""The configurations the benchmark measures, and the targets the report holds them against."""

from __future__ import annotations

from dataclasses import dataclass


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
    BenchConfig("torch-bf16-compiled", "torch", "bf16", compile=True),
    BenchConfig("onnxruntime-fp32", "onnxruntime", "fp32"),
    BenchConfig("onnxruntime-int8", "onnxruntime", "int8"),
    BenchConfig("onnxruntime-int8-uint8-logits", "onnxruntime", "int8", float_parts=("flow",)),
    BenchConfig("onnxruntime-int8-float-spatial", "onnxruntime", "int8", float_parts=("flow", "logits", "spatial")),
    BenchConfig("torch-fp16-cuda", "torch", "fp16", device="cuda"),
    BenchConfig("tensorrt-fp16", "tensorrt", "fp16", device="cuda"),
    BenchConfig("tensorrt-int8", "tensorrt", "int8", device="cuda"),
)}
REFERENCE_CONFIG = "torch-fp32"
AGREEMENT_TARGET = 0.99
CONFIDENT_MARGIN = 1.0
"""A pixel is confident when fp32's two largest logits differ by at least this much."""
LIMIT_TARGET = 0.8
"""The best configuration through the Segmenter, as a fraction of the machine's int8 frame-rate limit."""


def node_target(config: str) -> float:
    """The node's delivered rate over its bare Segmenter's that ``config`` must reach: 0.9 on torch
    (its worker threads share the cores with the node's DDS and executor threads), 0.95 otherwise."""
    return 0.9 if CONFIGS[config].backend == "torch" else 0.95


def select_configs(names: list[str]) -> list[str]:
    """The configurations named (``all``: every one), the reference first; ValueError on unknown names."""
    chosen = list(CONFIGS) if "all" in names else list(dict.fromkeys(names))
    unknown = [n for n in chosen if n not in CONFIGS]
    if unknown:
        raise ValueError(f"unknown configurations {unknown}; choose from all, {', '.join(CONFIGS)}")
    return sorted(chosen, key=lambda n: n != REFERENCE_CONFIG)  # the reference labels come first
