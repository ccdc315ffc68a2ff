"""The machine's measured convolution peaks per precision, and the model's cost, for "fraction of the limit".

A peak is the throughput of a stack of large 3x3 convolutions (256 -> 256 channels on a 128 x 256
map by default), the most favourable shape a CNN offers a CPU: no model of this family can run
faster per operation. The model's frame-rate limit at a precision is peak / (2 x its MACs).

Measured back ends: PyTorch eager fp32 and bf16 (autocast), ONNX Runtime fp32, and ONNX Runtime
int8 (QDQ, uint8 activations, per-channel int8 weights: the format :mod:`bialign_ros.quantize`
writes). The ONNX graphs are built directly, so measuring takes seconds and needs no exporter.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

PEAK_KINDS: tuple[str, ...] = ("torch_fp32", "torch_bf16", "ort_fp32", "ort_int8")
PRECISION_PEAKS = {"fp32": ("torch_fp32", "ort_fp32"), "bf16": ("torch_bf16",), "fp16": (),
                   "int8": ("ort_int8",)}
"""Which measured peaks bound a precision: its limit is the best of them."""
PEAK_REPEATS = 5
"""Timed passes of a benchmark's peak measurement (the best counts)."""


@dataclass(frozen=True)
class ConvStack:
    """The measured workload: ``layers`` 3x3 convolutions, ``channels`` -> ``channels``, on
    ``height`` x ``width``."""

    layers: int = 4
    channels: int = 256
    height: int = 128
    width: int = 256

    @property
    def ops(self) -> float:
        """Operations (2 per multiply-add) of one pass through the stack."""
        return 2.0 * self.layers * self.channels * self.channels * 9 * self.height * self.width


def _best_time(fn, repeats: int) -> float:
    fn()  # warm-up: allocation, kernel selection
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def torch_peak(stack: ConvStack, bf16: bool = False, repeats: int = 3) -> float:
    """GOP/s of the stack in PyTorch eager on the CPU (channels-last; bf16 through autocast)."""
    torch.manual_seed(0)
    c = stack.channels
    convs = nn.Sequential(*[nn.Conv2d(c, c, 3, padding=1) for _ in range(stack.layers)])
    convs = convs.eval().to(memory_format=torch.channels_last)
    x = torch.randn(1, c, stack.height, stack.width).contiguous(memory_format=torch.channels_last)

    def run() -> None:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            convs(x)

    return stack.ops / _best_time(run, repeats) / 1e9


def conv_stack_onnx(stack: ConvStack, int8: bool) -> bytes:
    """The stack as a serialised ONNX model: fp32 convolutions, or QDQ int8 ones."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    c = stack.channels
    nodes, inits = [], []
    x = "x"
    if int8:
        inits += [numpy_helper.from_array(np.array(0.05, np.float32), "act_scale"),
                  numpy_helper.from_array(np.array(128, np.uint8), "act_zero")]
        nodes.append(helper.make_node("QuantizeLinear", ["x", "act_scale", "act_zero"], ["q0"]))
        x = "q0"
    for i in range(stack.layers):
        w = (rng.standard_normal((c, c, 3, 3)) / np.sqrt(9 * c)).astype(np.float32)
        b = np.zeros(c, np.float32)
        if int8:
            scale = (np.abs(w).reshape(c, -1).max(1) / 127).astype(np.float32)
            wq = np.clip(np.rint(w / scale[:, None, None, None]), -127, 127).astype(np.int8)
            inits += [numpy_helper.from_array(wq, f"w{i}"), numpy_helper.from_array(scale, f"ws{i}"),
                      numpy_helper.from_array(np.zeros(c, np.int8), f"wz{i}"),
                      numpy_helper.from_array(np.zeros(c, np.int32), f"b{i}")]
            nodes += [
                helper.make_node("DequantizeLinear", [x, "act_scale", "act_zero"], [f"xd{i}"]),
                helper.make_node("DequantizeLinear", [f"w{i}", f"ws{i}", f"wz{i}"], [f"wd{i}"], axis=0),
                helper.make_node("Conv", [f"xd{i}", f"wd{i}"], [f"y{i}"], pads=[1, 1, 1, 1]),
                helper.make_node("QuantizeLinear", [f"y{i}", "act_scale", "act_zero"], [f"q{i + 1}"]),
            ]
            x = f"q{i + 1}"
        else:
            inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
            nodes.append(helper.make_node("Conv", [x, f"w{i}", f"b{i}"], [f"y{i}"], pads=[1, 1, 1, 1]))
            x = f"y{i}"
    if int8:
        nodes.append(helper.make_node("DequantizeLinear", [x, "act_scale", "act_zero"], ["out"]))
    else:
        nodes.append(helper.make_node("Identity", [x], ["out"]))
    shape = [1, c, stack.height, stack.width]
    graph = helper.make_graph(nodes, "conv_stack",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model.SerializeToString()


def ort_peak(stack: ConvStack, int8: bool, threads: int = 0, repeats: int = 3) -> float:
    """GOP/s of the stack in ONNX Runtime on the CPU (fp32, or int8 QDQ)."""
    import onnxruntime as ort

    from bialign_ros.backends.ort_runner import session_options

    session = ort.InferenceSession(conv_stack_onnx(stack, int8), session_options(threads),
                                   providers=["CPUExecutionProvider"])
    shape = (1, stack.channels, stack.height, stack.width)
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    return stack.ops / _best_time(lambda: session.run(None, {"x": x}), repeats) / 1e9


@dataclass(frozen=True)
class Peaks:
    """Measured GOP/s per back end and precision (None: not measured)."""

    torch_fp32: float | None = None
    torch_bf16: float | None = None
    ort_fp32: float | None = None
    ort_int8: float | None = None

    def limit(self, precision: str) -> float | None:
        """The best measured GOP/s for ``precision`` (fp32, bf16, int8), or None."""
        values = [v for v in (getattr(self, k) for k in PRECISION_PEAKS.get(precision, ())) if v is not None]
        return max(values) if values else None

    def to_dict(self) -> dict[str, float | None]:
        """Plain form for JSON reports."""
        return asdict(self)


def measure_peaks(stack: ConvStack = ConvStack(), kinds: tuple[str, ...] = PEAK_KINDS, threads: int = 0,
                  repeats: int = 3) -> Peaks:
    """Measure the peaks named in ``kinds`` (see :data:`PEAK_KINDS`) on this machine."""
    unknown = set(kinds) - set(PEAK_KINDS)
    if unknown:
        raise ValueError(f"unknown peak kinds {sorted(unknown)}; choose from {', '.join(PEAK_KINDS)}")
    measure = {
        "torch_fp32": lambda: torch_peak(stack, bf16=False, repeats=repeats),
        "torch_bf16": lambda: torch_peak(stack, bf16=True, repeats=repeats),
        "ort_fp32": lambda: ort_peak(stack, int8=False, threads=threads, repeats=repeats),
        "ort_int8": lambda: ort_peak(stack, int8=True, threads=threads, repeats=repeats),
    }
    return Peaks(**{k: measure[k]() for k in kinds})


def model_macs(model: nn.Module, height: int, width: int) -> int:
    """Multiply-adds of the convolutions and linear layers of one forward pass at ``height`` x ``width``
    (eval mode, batch 1). Pooling, resizing and grid sampling are left out (well under 1 %)."""
    total = 0

    def count(module: nn.Module, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
            total += output.numel() * k
        elif isinstance(module, nn.Linear):
            total += output.numel() * module.in_features

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.inference_mode():
            model.eval()(torch.zeros(1, 3, height, width))
    finally:
        for h in hooks:
            h.remove()
    return total


def frame_limit(macs: int, gops: float | None) -> float | None:
    """Frames per second a model of ``macs`` multiply-adds cannot exceed at ``gops`` GOP/s."""
    return None if not gops else gops * 1e9 / (2.0 * macs)
