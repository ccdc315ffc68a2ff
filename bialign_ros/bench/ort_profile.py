"""Where ONNX Runtime spends a frame: its profiler's kernel times, summed per operator type.

The graph profiled is the one the Segmenter runs for labels and edges (on the CPU, the file's graph cut
down to them), in a session of its own with the same options, on a batch at the network's size.
"""

from __future__ import annotations

import json
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from bialign_ros.backends.contract import INPUT_NAME
from bialign_ros.backends.ort_runner import LABELS_AND_EDGES, OrtRunner, ort_session

PROFILE_RUNS = 3
"""Frames profiled, after one warm-up frame whose events are left out."""

TOP_OPERATORS = 6
"""Operator types the report names one by one; the rest add up to *other*."""

MAC_OPERATORS = frozenset({"QLinearConv", "QGemm", "QLinearMatMul", "MatMulInteger", "ConvInteger", "Conv",
                           "FusedConv", "NhwcFusedConv", "Gemm", "MatMul", "FusedMatMul"})
"""Operator types that do the network's multiply-accumulates (those the frame-rate limits count)."""


def profile_runner(runner: OrtRunner, batch: np.ndarray, runs: int = PROFILE_RUNS) -> dict[str, Any]:
    """Profile ``runs`` frames of ``runner``'s labels-and-edges graph on ``batch`` (N x H x W x 3 uint8)
    after one warm-up frame: :func:`summarise_profile` of ONNX Runtime's events."""
    with tempfile.TemporaryDirectory() as tmp:
        session = ort_session(runner.labels_and_edges_model(), runner.threads, runner.providers,
                              profile_prefix=str(Path(tmp) / "ort"))
        for _ in range(runs + 1):
            session.run(list(LABELS_AND_EDGES), {INPUT_NAME: np.ascontiguousarray(batch)})
        events = json.loads(Path(session.end_profiling()).read_text())
    return summarise_profile(events, runs)


def summarise_profile(events: list[dict[str, Any]], runs: int) -> dict[str, Any]:
    """The last ``runs`` frames (``model_run`` events) of an ONNX Runtime profile: ``frame_ms``, their mean
    duration, and ``operators_ms``, the mean kernel time per frame of each operator type, largest first."""
    frames = sorted((e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"),
                    key=lambda e: e["ts"])[-runs:]
    if len(frames) < runs:
        raise ValueError(f"the profile holds {len(frames)} frame(s), not {runs}")
    windows = [(e["ts"], e["ts"] + e["dur"]) for e in frames]
    per_op: dict[str, float] = defaultdict(float)
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time") \
                and any(start <= e["ts"] <= end for start, end in windows):
            per_op[e["args"]["op_name"]] += e["dur"]
    ms = {op: us / 1000.0 / runs for op, us in sorted(per_op.items(), key=lambda kv: -kv[1])}
    return {"frames": runs, "frame_ms": sum(end - start for start, end in windows) / 1000.0 / runs,
            "operators_ms": ms}


def mac_share(profile: dict[str, Any]) -> float:
    """The share of the profiled frame spent in :data:`MAC_OPERATORS` kernels (0 for an empty frame)."""
    frame = profile["frame_ms"]
    return sum(ms for op, ms in profile["operators_ms"].items() if op in MAC_OPERATORS) / frame if frame else 0.0


def top_operators(profile: dict[str, Any], top: int = TOP_OPERATORS) -> list[tuple[str, float, float]]:
    """(operator type, ms per frame, share of the frame) of the ``top`` largest, then ``other`` (the rest of
    the kernels) and ``between kernels`` (the frame time no kernel accounts for)."""
    frame, ops = profile["frame_ms"], list(profile["operators_ms"].items())
    rows = [(op, ms) for op, ms in ops[:top]]
    rest = sum(ms for _, ms in ops[top:])
    if rest:
        rows.append(("other", rest))
    rows.append(("between kernels", max(0.0, frame - sum(ms for _, ms in ops))))
    return [(op, ms, ms / frame if frame else 0.0) for op, ms in rows]
