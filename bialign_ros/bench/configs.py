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

    def emulated(self, flags: frozenset[str] | None = None) -> str | None:
        """Why this configuration would run emulated on this CPU (``flags``: its instruction-set flags, by
        default this CPU's), or None: bf16 on a CPU without bf16 instructions, where PyTorch takes
        seconds a frame (9.5 s at 512x1024 on a 2-core AVX2 EPYC) and ``precision`` ``auto`` runs fp32."""
        from bialign_ros.backends.base import cpu_flags

        flags = cpu_flags() if flags is None else flags
        if self.precision == "bf16" and self.device == "cpu" and flags and not flags & BF16_FLAGS:
            return (f"this CPU has no bf16 instructions ({', '.join(sorted(BF16_FLAGS))}): PyTorch emulates bf16 "
                    "at seconds a frame, and precision auto runs fp32 here; name the configuration in --configs "
                    "to measure it anyway")
        return None


BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
"""CPU flags of instructions that compute in bf16."""


def skip_reason(name: str, named: bool, flags: frozenset[str] | None = None) -> str | None:
    """Why the configuration ``name`` is not measured: it cannot run here, or, chosen through ``all`` and not
    ``named`` itself, it would run emulated (:meth:`BenchConfig.emulated`); None to measure it."""
    config = CONFIGS[name]
    return config.unavailable() or (None if named else config.emulated(flags))


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
