"""The PyTorch backend: the inference graph in eager mode (optionally torch.compile), CPU or CUDA."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from bialign_ros.backends.base import Runner, RunOutputs, check_batch
from bialign_ros.backends.contract import HEAD_FACTOR
from bialign_ros.backends.graph import InferenceGraph
from bialign_ros.checkpoint import CheckpointError, ModelMeta, load_checkpoint
from bialign_ros.model import BiAlignNet, build_model

TORCH_PRECISIONS = ("fp32", "fp16", "bf16")
_TRAIN_ONLY_PREFIXES = ("cxt16_aux.", "cxt8_aux.")
_CLASSIFIER = "conv_out.conv_out.weight"
"""The main head's last convolution: HEAD_FACTOR ** 2 outputs per class (before the pixel shuffle)."""


def load_inference_model(path: str | Path) -> tuple[BiAlignNet, ModelMeta]:
    """The eval-mode model (edge head, no auxiliary heads) and metadata of a bialign_ros checkpoint.

    Raises CheckpointError for a missing or foreign file, a class table that is not the classifier's,
    and on weights that do not fit exactly.
    """
    state, meta, _ = load_checkpoint(path)
    head = state.get(_CLASSIFIER)
    if head is not None and head.shape[0] != HEAD_FACTOR**2 * meta.num_classes:
        raise CheckpointError(f"{path}: its class table names {meta.num_classes} classes but its classifier "
                              f"has {head.shape[0] // HEAD_FACTOR**2}")
    model = build_model(meta.arch, num_classes=meta.num_classes, gate=meta.gate, aux=False, edge=True)
    state = {k: v for k, v in state.items() if not k.startswith(_TRAIN_ONLY_PREFIXES)}
    model.load_state_dict(state, strict=True)
    return model.eval(), meta


class TorchRunner(Runner):
    """Runs :class:`InferenceGraph` with PyTorch.

    CPU: fp32, or bf16 through autocast; channels-last memory and the space-to-depth stems.
    CUDA: fp16 (or fp32) weights, channels-last, pinned-memory upload; normalisation, argmax and the
    edge quantisation run on the device, so only uint8 crosses back (edges arrive in steps of 1/255).
    ``compile=True`` wraps the graph in ``torch.compile`` with inductor's weight freezing (and, on the
    CPU, its C++ wrapper); the first
    call at each input size compiles (tens of seconds to minutes on a small CPU).
    """

    name = "torch"

    def __init__(self, model: BiAlignNet, meta: ModelMeta, device: torch.device, precision: str = "fp32",
                 compile: bool = False) -> None:
        if precision not in TORCH_PRECISIONS:
            raise ValueError(f"the torch backend runs {', '.join(TORCH_PRECISIONS)}; got {precision!r}")
        if precision == "fp16" and device.type != "cuda":
            raise ValueError("precision 'fp16' needs a CUDA device; use 'fp32' or 'bf16' on the CPU")
        self.device_obj = device
        self.device = str(device)
        self.precision = precision
        self.compiled = compile
        graph = InferenceGraph(model, meta, space_to_depth=True).eval()
        graph.channels_last = True
        graph = graph.to(device=device, memory_format=torch.channels_last)
        if precision == "fp16":
            graph = graph.half()
        elif precision == "bf16":
            round_weights_for_autocast(graph, torch.bfloat16)
        self.graph = graph
        self._fn = graph
        if compile:
            import torch._inductor.config as inductor_config

            # Freezing folds the weights into the compiled graph (prepacked for oneDNN on CPUs); without
            # it the compiled graph was slower than eager here. It is a process-wide setting.
            inductor_config.freezing = True
            # On the CPU the compiled graph's kernels are called from generated C++ instead of Python:
            # 50 against 55 ms a bf16 frame at 512x1024 here, for 30 s of compiling instead of 22.
            options = {"cpp_wrapper": True} if device.type == "cpu" else None
            self._fn = torch.compile(graph, dynamic=False, options=options)

    @torch.inference_mode()
    def run_tensors(self, images: torch.Tensor, confidence: bool = False,
                    logits: bool = False) -> tuple[torch.Tensor | None, ...]:
        """The graph on a uint8 N x H x W x 3 tensor already on the device; outputs stay there."""
        with torch.autocast(self.device_obj.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            return self._fn(images, confidence, logits)

    def run(self, images: np.ndarray, confidence: bool = False, logits: bool = False) -> RunOutputs:
        check_batch(images)
        with warnings.catch_warnings():  # frames straight from a message buffer are read-only; the graph only reads
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            x = torch.from_numpy(images)
        if self.device_obj.type == "cuda":
            x = x.pin_memory().to(self.device_obj, non_blocking=True)
        labels, edges, conf, *raw = self.run_tensors(x, confidence, logits)
        raw = [t.float().cpu().numpy() for t in raw]  # logits: only when the outputs change size
        if self.device_obj.type == "cuda":  # only uint8 travels back to the host
            return RunOutputs(labels.cpu().numpy(), quantized_to_host(edges), quantized_to_host(conf), *raw)
        return RunOutputs(labels.numpy(), edges.float().numpy(), None if conf is None else conf.numpy(), *raw)

    def close(self) -> None:
        self.graph = self._fn = None
        if self.device_obj.type == "cuda":
            torch.cuda.empty_cache()


def round_weights_for_autocast(graph: torch.nn.Module, dtype: torch.dtype) -> None:
    """Store the weights of the convolutions and matrix products in ``dtype``, in place: autocast
    rounds them to it anyway, but once a frame (5-6 ms of a 512x1024 bf16 frame on the 2-core Xeon);
    rounded once here, every operation reads the same values."""
    for module in graph.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            module.to(dtype)


def quantized_to_host(probability: torch.Tensor | None) -> np.ndarray | None:
    """A probability map on the GPU as float32 on the host, through ``round(255 p)`` uint8: a quarter
    of the bytes, and the published maps are ``round(255 p)`` anyway."""
    if probability is None:
        return None
    as_u8 = torch.round(probability.float() * 255.0).to(torch.uint8)
    return as_u8.cpu().numpy().astype(np.float32) * np.float32(1.0 / 255.0)
