"""The inference engine: an RGB uint8 image in, labels and an edge map at the same resolution out.

Pure Python (PyTorch, NumPy, OpenCV); the ROS node, the CLIs and the rosbag evaluation all run
images through :class:`Segmenter`, so pre- and post-processing exist once.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from bialign_ros.checkpoint import ModelMeta, load_checkpoint
from bialign_ros.colorize import colorize, make_palette, overlay
from bialign_ros.model import build_model

LOG = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda", "cuda:N")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
_TRAIN_ONLY_PREFIXES = ("cxt16_aux.", "cxt8_aux.")


def resolve_device(device: str) -> torch.device:
    """Turn ``auto|cpu|cuda|cuda:N`` into a torch device; ValueError for anything else."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        return torch.device("cpu")
    if re.fullmatch(r"cuda(:\d+)?", device or ""):
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available; use 'cpu' or 'auto'")
        dev = torch.device(device)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) present")
        return dev
    raise ValueError(f"device must be one of {', '.join(DEVICES)}; got {device!r}")


def resolve_precision(precision: str, device: torch.device) -> str:
    """Choose the compute precision: fp16 on CUDA and fp32 on CPU for ``auto``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    if precision == "auto":
        return "fp16" if device.type == "cuda" else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("precision 'fp16' needs a CUDA device; use 'fp32' or 'bf16' on the CPU")
    return precision


@dataclass
class SegmentationResult:
    """What :meth:`Segmenter.segment` returns, at the input image's resolution."""

    labels: np.ndarray
    """H x W uint8 train IDs."""
    edges: np.ndarray | None
    """H x W float32 edge probability in [0, 1], or None when edges were not requested."""

    def edges_u8(self) -> np.ndarray:
        """The edge map as H x W uint8, ``round(255 * p)``."""
        if self.edges is None:
            raise ValueError("this result was computed without edges")
        return np.rint(self.edges * 255.0).astype(np.uint8)


class Segmenter:
    """Runs BiAlignNet on single HxWx3 uint8 RGB images.

    Use :meth:`from_checkpoint`. On CUDA the model runs in fp16 with channels_last and the
    resize/argmax happen on the device, so only uint8 labels travel back to the host.
    """

    backend = "torch"

    def __init__(self, model: torch.nn.Module, meta: ModelMeta, device: torch.device, precision: str,
                 input_scale: float = 1.0) -> None:
        if not 0.0 < input_scale <= 4.0:
            raise ValueError(f"input_scale must be in (0, 4], got {input_scale}")
        self.meta = meta
        self.device_obj = device
        self.precision = precision
        self.input_scale = float(input_scale)
        self._palette = make_palette(meta.class_colors)
        self._model = model.eval().to(device)
        if device.type == "cuda":
            self._model = self._model.to(memory_format=torch.channels_last)
            if precision == "fp16":
                self._model = self._model.half()
        self._dtype = torch.float16 if precision == "fp16" else torch.float32
        mean = torch.tensor(meta.mean, dtype=torch.float32).view(1, 3, 1, 1) * 255.0
        std = torch.tensor(meta.std, dtype=torch.float32).view(1, 3, 1, 1) * 255.0
        self._mean = mean.to(device)
        self._inv_std = (1.0 / std).to(device)

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "auto", precision: str = "auto",
                        input_scale: float = 1.0, warmup: bool = True) -> Segmenter:
        """Load a bialign_ros checkpoint and prepare it for inference.

        ``device``: auto|cpu|cuda|cuda:N; ``precision``: auto|fp32|fp16|bf16; ``input_scale``
        resizes the network input (e.g. 0.5 on a CPU) while outputs stay at the image's size.
        """
        dev = resolve_device(device)
        prec = resolve_precision(precision, dev)
        state, meta, _ = load_checkpoint(path)
        if meta.training.get("untrained"):
            LOG.warning("%s holds UNTRAINED weights: labels and edges will be noise", path)
        model = build_model(meta.arch, num_classes=meta.num_classes, gate=meta.gate, aux=False, edge=True)
        state = {k: v for k, v in state.items() if not k.startswith(_TRAIN_ONLY_PREFIXES)}
        model.load_state_dict(state, strict=True)
        seg = cls(model, meta, dev, prec, input_scale)
        if warmup:
            seg.segment(np.zeros((256, 512, 3), np.uint8))
        return seg

    @property
    def device(self) -> str:
        """The device the model runs on, e.g. ``cpu`` or ``cuda:0``."""
        return str(self.device_obj)

    @property
    def model(self) -> torch.nn.Module:
        """The underlying network (eval mode)."""
        return self._model

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        """HxWx3 uint8 RGB -> 1x3xhxw normalised tensor on the device (h, w after input_scale)."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an H x W x 3 uint8 RGB image, got {image.dtype} array of shape {image.shape}")
        if image.shape[0] < 8 or image.shape[1] < 8:
            raise ValueError(f"image of {image.shape[1]}x{image.shape[0]} is too small (at least 8x8)")
        if self.meta.channel_order == "bgr":
            image = image[:, :, ::-1]
        if self.input_scale != 1.0:
            h, w = image.shape[:2]
            size = (max(8, round(w * self.input_scale)), max(8, round(h * self.input_scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA if self.input_scale < 1 else cv2.INTER_LINEAR)
        x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).unsqueeze(0)
        if self.device_obj.type == "cuda":
            x = x.pin_memory().to(self.device_obj, non_blocking=True)
        x = (x.float() - self._mean) * self._inv_std
        if self.device_obj.type == "cuda":
            x = x.to(self._dtype).contiguous(memory_format=torch.channels_last)
        return x

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the network on a preprocessed batch; returns (logits, edge probability)."""
        autocast = self.precision == "bf16"
        with torch.autocast(self.device_obj.type, dtype=torch.bfloat16, enabled=autocast):
            logits, edges = self._model(x)
        return logits, edges

    @torch.inference_mode()
    def segment(self, image: np.ndarray, edges: bool = True) -> SegmentationResult:
        """Segment one H x W x 3 uint8 RGB image; outputs have the image's own H x W."""
        h, w = image.shape[:2]
        logits, edge = self.forward(self.preprocess(image))
        if logits.shape[-2:] != (h, w):
            logits = F.interpolate(logits.float(), size=(h, w), mode="bilinear", align_corners=True)
        labels = logits.argmax(1)[0].to(torch.uint8).cpu().numpy()
        edge_np = None
        if edges:
            if edge.shape[-2:] != (h, w):
                edge = F.interpolate(edge.float(), size=(h, w), mode="bilinear", align_corners=True)
            edge_np = edge[0, 0].float().cpu().numpy()
        return SegmentationResult(labels=labels, edges=edge_np)

    __call__ = segment

    def colorize(self, labels: np.ndarray) -> np.ndarray:
        """H x W uint8 labels -> H x W x 3 uint8 RGB class colours (255 = black)."""
        return colorize(labels, self._palette)

    def overlay(self, image: np.ndarray, labels: np.ndarray, alpha: float = 0.5) -> np.ndarray:
        """Blend the class colours of ``labels`` over the RGB ``image``."""
        return overlay(image, self.colorize(labels), alpha, labels, self.meta.ignore_index)

    def close(self) -> None:
        """Release the model; on CUDA also return its cached memory to the driver."""
        self._model = None
        if self.device_obj.type == "cuda":
            torch.cuda.empty_cache()
