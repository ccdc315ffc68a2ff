"""Latency statistics and a description of the machine, for benchmark reports."""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence

import numpy as np


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    """Mean, p50, p90, p99 (milliseconds) and throughput (FPS) of per-item latencies."""
    ms = np.asarray(seconds, dtype=np.float64) * 1000.0
    if ms.size == 0:
        raise ValueError("no latencies to summarise")
    return {
        "n": int(ms.size),
        "mean_ms": float(ms.mean()),
        "p50_ms": float(np.percentile(ms, 50)),
        "p90_ms": float(np.percentile(ms, 90)),
        "p99_ms": float(np.percentile(ms, 99)),
        "fps": float(1000.0 / ms.mean()),
    }


def cpu_name() -> str:
    """The CPU model as the kernel reports it, e.g. 'AMD EPYC 9R14'."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware_summary() -> dict[str, object]:
    """CPU name, core count and the torch thread count, for the header of every report."""
    import torch

    info: dict[str, object] = {"cpu": cpu_name(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                               "torch": torch.__version__}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info
