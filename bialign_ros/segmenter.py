"""The inference engine: an RGB uint8 image in, labels and an edge map at the same resolution out.

Pure Python (NumPy, OpenCV and a backend); the ROS node, the CLIs and the rosbag
evaluation all run images through :class:`Segmenter`, so pre- and post-processing exist once.
The network itself runs in a backend (:mod:`bialign_ros.backends`): PyTorch for ``.pt``
checkpoints, ONNX Runtime for ``.onnx`` exports (fp32, fp16 or int8), TensorRT for engines. All of
them run the same inference graph (normalisation, argmax and edge sigmoid inside), so the
Segmenter only resizes when the network input differs from the image and packs the results.
PyTorch is imported only by the torch backend and the torch-only methods, so an install for ONNX
files (``requirements/runtime-onnx.txt``) runs without it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from bialign_ros.backends.base import BACKENDS, MIN_DYNAMIC_SIDE, Runner, RunOutputs, backend_for_file
from bialign_ros.backends.base import cpu_flags as this_cpu_flags
from bialign_ros.checkpoint import CheckpointError, ModelMeta
from bialign_ros.colorize import colorize, make_palette, overlay
from bialign_ros.upsample import (
    NetworkLogits,
    per_image,
    unshuffle_edge_logits,
    upsample_confidence,
    upsample_edges,
    upsample_labels,
)
from bialign_ros.worker_pool import WorkerPool

if TYPE_CHECKING:
    import torch

LOG = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda", "cuda:N")
PRECISIONS = ("auto", "fp32", "fp16", "bf16", "int8")
MIN_SIDE = 8


def _gpu_problem(backend: str, index: int) -> str | None:
    """Why ``backend`` cannot run on CUDA device ``index`` here, or None when it can."""
    if backend == "onnxruntime":
        from bialign_ros.backends.ort_runner import gpu_providers

        return None if gpu_providers() else ("this onnxruntime has no CUDA or TensorRT execution provider "
                                              "(install onnxruntime-gpu)")
    try:
        import torch
    except ImportError:
        return f"the {backend} backend reaches the GPU through PyTorch, which is not installed"
    if not torch.cuda.is_available():
        return "CUDA is not available"
    if index >= torch.cuda.device_count():
        return f"only {torch.cuda.device_count()} CUDA device(s) present"
    return None


def resolve_device(device: str, backend: str = "torch") -> str:
    """The device (``cpu``, ``cuda`` or ``cuda:N``) that ``auto|cpu|cuda|cuda:N`` means for ``backend``.

    ``auto`` is ``cuda`` when the backend can use a GPU here, else ``cpu``: onnxruntime asks for a
    CUDA or TensorRT execution provider, the torch and tensorrt backends ask PyTorch (``cpu`` when
    torch is not installed). ``cuda[:N]`` without a usable GPU, or anything else, is a ValueError.
    """
    match = re.fullmatch(r"cuda(?::(\d+))?", device or "")
    if device not in ("auto", "cpu") and not match:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}; got {device!r}")
    if device == "cpu":
        return device
    problem = _gpu_problem(backend, int(match.group(1) or 0) if match else 0)
    if device == "auto":
        return "cpu" if problem else "cuda"
    if problem:
        raise ValueError(f"device {device!r} requested but {problem}; use 'cpu' or 'auto'")
    return device


NATIVE_BF16_FLAG = "amx_bf16"
"""The CPU flag of matrix units that multiply bf16 natively (Intel AMX), where ``auto`` runs bf16."""


def resolve_precision(precision: str, device: str, cpu_flags: frozenset[str] | None = None) -> str:
    """Choose the PyTorch compute precision for a resolved device. ``auto``: fp16 on CUDA; on the CPU,
    bf16 where its matrix units multiply bf16 natively (AMX: :data:`NATIVE_BF16_FLAG` among
    ``cpu_flags``, by default this CPU's), else fp32. Measured on a 2-core Xeon with AMX: bf16 ran the
    Segmenter at 2.9x fp32's frame rate at 512x1024, with 99.7 % of the labels equal to fp32's."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    cuda = device.startswith("cuda")
    if precision == "auto":
        if cuda:
            return "fp16"
        return "bf16" if NATIVE_BF16_FLAG in (this_cpu_flags() if cpu_flags is None else cpu_flags) else "fp32"
    if precision == "fp16" and not cuda:
        raise ValueError("precision 'fp16' needs a CUDA device; use 'fp32' or 'bf16' on the CPU")
    if precision == "int8":
        raise ValueError("precision 'int8' runs through onnxruntime: make a file with 'bialign_quantize "
                         "--weights W.pt --calib DIR --out W.int8.onnx' and pass it as weights")
    return precision


@dataclass
class SegmentationResult:
    """What :meth:`Segmenter.segment` returns, at the input image's resolution."""

    labels: np.ndarray
    """H x W uint8 train IDs."""
    edges: np.ndarray | None
    """H x W float32 edge probability in [0, 1], or None when edges were not requested."""
    confidence: np.ndarray | None = None
    """H x W float32 softmax probability of each pixel's label, or None when not requested."""

    def edges_u8(self) -> np.ndarray:
        """The edge map as H x W uint8, ``round(255 * p)``."""
        if self.edges is None:
            raise ValueError("this result was computed without edges")
        return probability_u8(self.edges)

    def confidence_u8(self) -> np.ndarray:
        """The confidence map as H x W uint8, ``round(255 * p)``."""
        if self.confidence is None:
            raise ValueError("this result was computed without confidence (segment(..., confidence=True))")
        return probability_u8(self.confidence)


def probability_u8(p: np.ndarray) -> np.ndarray:
    """A probability map as uint8 ``round(255 * p)``, as the node publishes it."""
    return np.rint(p * 255.0).astype(np.uint8)


def _check_image(image: np.ndarray) -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an H x W x 3 uint8 RGB image, got {image.dtype} array of shape "
                         f"{image.shape}")
    if image.shape[0] < MIN_SIDE or image.shape[1] < MIN_SIDE:
        raise ValueError(f"image of {image.shape[1]}x{image.shape[0]} is too small "
                         f"(at least {MIN_SIDE}x{MIN_SIDE})")


class Segmenter:
    """Runs BiAlignNet on H x W x 3 uint8 RGB images through one of the backends.

    Use :meth:`from_checkpoint`. The network input is the image itself, or the image resized by
    ``input_scale``, or resized to the fixed size of an exported graph (multiples of 8 for a
    dynamic-size export). When it differs from the image, the outputs are what the network's logits
    give once resized bilinearly (``align_corners=False``) to the image's size: labels their argmax,
    edges the sigmoid of the edge logit, confidence the largest softmax probability (computed
    without resizing every class everywhere: :mod:`bialign_ros.upsample`). Otherwise they are the
    graph's outputs unchanged.
    """

    def __init__(self, runner: Runner, meta: ModelMeta, input_scale: float = 1.0,
                 model: torch.nn.Module | None = None):
        if not 0.0 < input_scale <= 4.0:
            raise ValueError(f"input_scale must be in (0, 4], got {input_scale}")
        self.runner = runner
        self.meta = meta
        self.input_scale = float(input_scale)
        self._model = model
        self._palette = make_palette(meta.class_colors)
        self._fixed_warned = False
        self._stale_warned = False
        self.pool = WorkerPool(name="upsample")
        """Threads that bring outputs computed at another size to the image's (bands of rows)."""

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "auto", precision: str = "auto",
                        input_scale: float = 1.0, warmup: bool = True, backend: str = "auto",
                        compile: bool = False, threads: int = 0) -> Segmenter:
        """Load weights and prepare them for inference.

        ``path``: a bialign_ros checkpoint (``.pt``), an ONNX export (``.onnx``, fp32/fp16/int8) or a
        TensorRT engine (``.engine``/``.plan`` beside its ``.onnx``). ``backend``: auto (from the file),
        torch, onnxruntime or tensorrt. ``device``: auto|cpu|cuda|cuda:N. ``precision``:
        auto|fp32|fp16|bf16|int8; exported files hold their own precision, which ``auto`` takes and
        any other value must match. ``input_scale`` resizes the network input (e.g. 0.5 on a CPU)
        while outputs stay at the image's size. ``compile`` wraps the torch backend in
        ``torch.compile`` (then without a warm-up frame); ``threads`` sets the model's intra-op threads
        on the CPU (0: physical cores): ONNX Runtime's session's, or PyTorch's for the whole process.
        """
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
        chosen = backend_for_file(path, backend)
        dev = resolve_device(device, chosen)
        model = None
        if chosen == "torch":
            try:
                import torch

                from bialign_ros.backends.torch_runner import TorchRunner, load_inference_model
            except ImportError as exc:  # an install for ONNX files only (requirements/runtime-onnx.txt)
                raise CheckpointError(f"{path}: checkpoints run on PyTorch, which is not installed here; "
                                      "run an ONNX export of it (bialign_export --weights W.pt --format onnx "
                                      "--out W.onnx) or install requirements/runtime.txt") from exc
            prec = resolve_precision(precision, dev)
            if threads and dev == "cpu":
                torch.set_num_threads(threads)
            model, meta = load_inference_model(path)
            runner: Runner = TorchRunner(model, meta, torch.device(dev), prec, compile=compile)
            model = model.to(dev, torch.float16 if prec == "fp16" else torch.float32)  # for forward()
        else:
            if precision not in PRECISIONS:
                raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
            if chosen == "onnxruntime":
                from bialign_ros.backends.ort_runner import OrtRunner

                runner = OrtRunner(path, dev, threads=threads)
            else:
                from bialign_ros.backends.tensorrt_runner import TensorRTRunner

                runner = TensorRTRunner(path, dev)
            meta = runner.meta
            if precision not in ("auto", runner.precision):
                raise ValueError(f"{Path(path).name} holds a {runner.precision} model; precision must be "
                                 f"'auto' or '{runner.precision}', got {precision!r}")
        seg = cls(runner, meta, input_scale, model=model)
        if meta.training.get("untrained"):
            LOG.warning("%s holds UNTRAINED weights: labels and edges will be noise", path)
        if warmup and not compile:  # a compiled graph compiles per image size: a warm-up would add one
            seg.warm_up()
        return seg

    def warm_up(self) -> None:
        """Run one small blank frame through the whole path, so that the first camera frame does not pay
        for the backend's set-up (the frame is no camera's: see :attr:`Runner.warming_up`)."""
        self.runner.warming_up = True
        try:
            self.segment(np.zeros((256, 512, 3), np.uint8))
        finally:
            self.runner.warming_up = False

    @property
    def backend(self) -> str:
        """torch, onnxruntime or tensorrt."""
        return self.runner.name

    @property
    def device(self) -> str:
        """The device the model runs on, e.g. ``cpu`` or ``cuda:0``."""
        return self.runner.device

    @property
    def device_obj(self) -> torch.device:
        """The device as a torch device (needs PyTorch)."""
        import torch

        return torch.device(self.runner.device)

    @property
    def precision(self) -> str:
        """The compute precision: fp32, fp16, bf16 or int8."""
        return self.runner.precision

    @property
    def model(self) -> torch.nn.Module | None:
        """The underlying network (eval mode) for the torch backend; None for exported files."""
        return self._model

    def network_size(self, height: int, width: int) -> tuple[int, int]:
        """The (height, width) the network runs at for an image of ``height`` x ``width``."""
        fixed = self.runner.fixed_size
        if fixed is not None:
            if self.input_scale != 1.0 and not self._fixed_warned:
                LOG.warning("input_scale %g is ignored: the model's input size is fixed at %dx%d",
                            self.input_scale, fixed[1], fixed[0])
                self._fixed_warned = True
            return fixed
        h, w = height, width
        if self.input_scale != 1.0:
            h, w = max(MIN_SIDE, round(h * self.input_scale)), max(MIN_SIDE, round(w * self.input_scale))
        m = self.runner.size_multiple
        if m > 1:
            low = max(m, MIN_DYNAMIC_SIDE)
            h, w = max(low, round(h / m) * m), max(low, round(w / m) * m)
        return h, w

    def network_input(self, image: np.ndarray) -> np.ndarray:
        """The image at the network's input size (itself when no resize is needed), as the runner takes it."""
        _check_image(image)
        h, w = image.shape[:2]
        nh, nw = self.network_size(h, w)
        if (nh, nw) == (h, w):
            return np.ascontiguousarray(image)
        shrink = nh * nw < h * w
        return cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        """HxWx3 uint8 RGB -> 1x3xhxw normalised float tensor (channel order of the model) on the device,
        as :meth:`forward` takes it (h, w: the network input size). Needs PyTorch."""
        import torch

        x = torch.from_numpy(self.network_input(image)).permute(2, 0, 1).unsqueeze(0)
        if self.meta.channel_order == "bgr":
            x = x.flip(1)
        mean = torch.tensor(self.meta.mean).view(1, 3, 1, 1) * 255.0
        std = torch.tensor(self.meta.std).view(1, 3, 1, 1) * 255.0
        return ((x.float() - mean) / std).to(self.device_obj)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The model's own (logits, edge probability) for a preprocessed batch, as float32 tensors (in
        bf16 computed in bf16, then widened); torch backend only."""
        if self._model is None:
            raise ValueError(f"forward() gives logits with the torch backend only; this Segmenter runs "
                             f"{self.backend}")
        import torch

        autocast = self.precision == "bf16"
        dev = self.device_obj.type
        with torch.inference_mode(), torch.autocast(dev, dtype=torch.bfloat16, enabled=autocast):
            logits, edges = self._model(x.to(next(self._model.parameters()).dtype))
        if autocast:
            logits, edges = logits.float(), None if edges is None else edges.float()
        return logits, edges

    def segment(self, image: np.ndarray, edges: bool = True, confidence: bool = False) -> SegmentationResult:
        """Segment one H x W x 3 uint8 RGB image; outputs have the image's own H x W."""
        return self.segment_batch([image], edges=edges, confidence=confidence)[0]

    def segment_batch(self, images: Sequence[np.ndarray], edges: bool = True,
                      confidence: bool = False) -> list[SegmentationResult]:
        """Segment several images of one size in one forward pass (e.g. frames of several cameras).

        ``edges`` and ``confidence`` choose the optional maps of the results.
        """
        if not images:
            return []
        shapes = {im.shape for im in images}
        if len(shapes) > 1:
            raise ValueError(f"a batch needs images of one size, got {sorted(shapes)}")
        batch = np.stack([self.network_input(im) for im in images]) if len(images) > 1 else \
            self.network_input(images[0])[None]
        h, w = images[0].shape[:2]
        nh, nw = batch.shape[1:3]
        resize = (nh, nw) != (h, w)
        exact = resize and self.runner.has_logits
        if resize and not exact and not self._stale_warned:
            LOG.warning("this file has no logits outputs (exported before them): labels come to the image's "
                        "size by nearest neighbour and edges by bilinear resizing of probabilities; export "
                        "it again for the exact bilinear upsampling of the logits")
            self._stale_warned = True
        max_batch = self.runner.max_batch or len(images)
        parts = [self.runner.run(batch[i:i + max_batch], confidence, exact) for i in range(0, len(images), max_batch)]
        results = []
        for part in parts:
            if exact:
                results += self._upsampled(part, (nh, nw), (h, w), edges, confidence)
                continue
            for i in range(len(part.labels)):
                maps = {"edges": part.edges[i] if edges else None,
                        "confidence": part.confidence[i] if confidence else None}
                lab = part.labels[i]
                if resize:
                    lab = cv2.resize(lab, (w, h), interpolation=cv2.INTER_NEAREST)
                    maps = {k: None if m is None else cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR)
                            for k, m in maps.items()}
                results.append(SegmentationResult(labels=lab, **maps))
        return results

    def _upsampled(self, part: RunOutputs, network: tuple[int, int], size: tuple[int, int], edges: bool,
                   confidence: bool) -> list[SegmentationResult]:
        """The images of a run at the ``network`` size, brought to ``size`` by bilinear upsampling of
        their logits (:mod:`bialign_ros.upsample`)."""
        count = len(part.labels)
        results = []
        for labels, raw, raw_edge in zip(part.labels, per_image(part.logits, count, *network),
                                         per_image(part.edge_logits, count, *network)):
            logits = NetworkLogits(raw, *network)
            results.append(SegmentationResult(
                labels=upsample_labels(labels, logits, size, self.pool),
                edges=upsample_edges(unshuffle_edge_logits(raw_edge, *network), size, self.pool) if edges else None,
                confidence=upsample_confidence(logits, size, self.pool) if confidence else None))
        return results

    __call__ = segment

    def colorize(self, labels: np.ndarray) -> np.ndarray:
        """H x W uint8 labels -> H x W x 3 uint8 RGB class colours (255 = black)."""
        return colorize(labels, self._palette)

    def overlay(self, image: np.ndarray, labels: np.ndarray, alpha: float = 0.5) -> np.ndarray:
        """Blend the class colours of ``labels`` over the RGB ``image``."""
        return overlay(image, self.colorize(labels), alpha, labels, self.meta.ignore_index)

    def close(self) -> None:
        """Release the model; on CUDA also return its cached memory to the driver."""
        self.runner.close()
        self.pool.close()
        self._model = None
