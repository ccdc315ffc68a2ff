"""Latency statistics, memory peaks and a description of the machine, for benchmark reports."""

from __future__ import annotations

import math
import os
import platform
import resource
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np

from bialign_ros.backends.base import cpu_flags

T = TypeVar("T")

CPU_FEATURES = ("avx2", "avx_vnni", "avx512f", "avx512_vnni", "avx512_bf16", "amx_int8", "amx_bf16")


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


MIN_TIMED_ROUNDS = 3
"""Timed rounds a time budget never cuts below."""


def time_calls(fn: Callable[[], object], iters: int, warmup: int, budget_s: float = math.inf) -> dict[str, float]:
    """Call ``fn`` ``warmup`` times untimed, then ``iters`` times timed; the :func:`latency_summary`.
    ``budget_s`` cuts slow calls short as :func:`time_alternating` does."""
    return time_alternating([fn], iters, warmup, budget_s)[0]


def time_alternating(fns: Sequence[Callable[[], object]], iters: int, warmup: int,
                     budget_s: float = math.inf) -> list[dict[str, float]]:
    """Like :func:`time_calls` for several functions called in turn (a, b, a, b, ...), so that other
    load on the machine, which comes in bursts, falls on each alike; one summary per function.

    ``budget_s`` bounds the time of a slow configuration (a CPU without bf16 instructions takes
    seconds per call): the untimed rounds stop once a quarter of it is spent (after one round), the
    timed ones once all of it is (after :data:`MIN_TIMED_ROUNDS`, or ``iters`` if fewer).
    """
    if iters < 1 or warmup < 0 or budget_s <= 0:
        raise ValueError(f"need iters >= 1, warmup >= 0 and budget_s > 0, got {iters}, {warmup} and {budget_s}")
    start = time.perf_counter()
    for _ in range(warmup):
        for fn in fns:
            fn()
        if time.perf_counter() - start >= budget_s / 4:
            break
    times: list[list[float]] = [[] for _ in fns]
    start = time.perf_counter()
    for done in range(1, iters + 1):
        for fn, took in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            took.append(time.perf_counter() - t0)
        if done >= MIN_TIMED_ROUNDS and time.perf_counter() - start >= budget_s:
            break
    return [latency_summary(took) for took in times]


def on_worker_thread(fn: Callable[[], T], name: str = "bare-segmenter") -> T:
    """``fn()`` run on a new thread, as the node runs inference: its value, or its exception raised here.

    Timings of a bare Segmenter go through this so that they meet what the node meets: PyTorch's
    speed can depend on the calling thread (the pyramid pooling's batched matrix products once ran
    12x slower off the main thread)."""
    result: list[T] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            result.append(fn())
        except BaseException as exc:  # handed to the caller as it is
            error.append(exc)

    worker = threading.Thread(target=run, name=name)
    worker.start()
    worker.join()
    if error:
        raise error[0]
    return result[0]


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB.

    Read from ``VmHWM`` where the kernel provides it: ``ru_maxrss`` keeps the peak of the parent
    process across ``fork`` and ``exec``, which would hide a child's own figure.
    """
    own = process_peak_rss_mb(os.getpid())
    return own if own is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def process_peak_rss_mb(pid: int) -> float | None:
    """Peak resident memory (VmHWM) of a running process in MiB, or None when unknown."""
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


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


def cpu_features() -> list[str]:
    """The vector and matrix extensions of :data:`CPU_FEATURES` that this CPU reports."""
    flags = cpu_flags()
    return [feature for feature in CPU_FEATURES if feature in flags]


def code_version() -> str:
    """This package's version and, when it runs from a git checkout, the commit (``+changes`` when
    tracked files of the package differ from it; reports and docs written meanwhile do not count):
    the code a report measured."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        release = version("bialign_ros")
    except PackageNotFoundError:
        release = "unknown"
    package = Path(__file__).resolve().parent
    root = package.parent

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30,
                              check=True).stdout.strip()
    try:
        if Path(git("rev-parse", "--show-toplevel")).resolve() != root:
            return release  # installed inside some other repository's tree
        commit = git("rev-parse", "--short=12", "HEAD")
        changed = git("status", "--porcelain", "--untracked-files=no", "--", package.name)
    except (OSError, subprocess.SubprocessError):
        return release
    return f"{release} git {commit}{'+changes' if changed else ''}"


def hardware_summary() -> dict[str, object]:
    """CPU name, features, cores, thread counts and library versions (this package's with its git
    commit, see :func:`code_version`), for the header of every report."""
    import torch

    from bialign_ros.backends.base import physical_cores

    info: dict[str, object] = {"cpu": cpu_name(), "cores": os.cpu_count(), "physical_cores": physical_cores(),
                               "cpu_features": cpu_features(), "torch_threads": torch.get_num_threads(),
                               "torch": torch.__version__, "bialign_ros": code_version()}
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info
