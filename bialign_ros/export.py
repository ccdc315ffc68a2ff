"""Exports of the inference graph: ONNX (for ONNX Runtime and TensorRT) and TorchScript.

Every export takes uint8 RGB images (N x H x W x 3, input ``images``) and returns ``labels``
(N x H x W uint8 train IDs) and ``edges`` (N x H x W edge probability), with normalisation,
argmax and the edge sigmoid inside (see :mod:`bialign_ros.backends.graph`). ONNX files carry the
model metadata (class table, normalisation, channel order) and a description of the graph (size,
precision) in their ``metadata_props``, so a node or CLI needs only the file's path. Those names
and the metadata layout are the contract in :mod:`bialign_ros.backends.contract`, which runtimes
import without torch or onnx.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from pathlib import Path
from typing import Any

import onnx
import torch

from bialign_ros.backends.base import MAX_DYNAMIC_SIDE, MIN_DYNAMIC_SIDE
from bialign_ros.backends.contract import (
    GRAPH_KEY,
    HEAD_FACTOR,
    INPUT_NAME,
    META_KEY,
    OUTPUT_NAMES,
    ExportError,
    GraphInfo,
    check_size,
    parse_metadata,
    read_onnx_metadata,
    set_onnx_metadata,
)
from bialign_ros.backends.graph import InferenceGraph
from bialign_ros.checkpoint import ModelMeta
from bialign_ros.model import BiAlignNet

# The graph contract is importable from here too; runtimes import it from backends.contract.
__all__ = [
    "EXPORT_FORMATS", "GRAPH_KEY", "INPUT_NAME", "META_KEY", "ONNX_OPSET", "OUTPUT_NAMES", "ExportError",
    "GraphInfo", "check_size", "export_onnx", "export_torchscript", "parse_metadata", "read_onnx_metadata",
    "set_onnx_metadata",
]

LOG = logging.getLogger(__name__)

ONNX_OPSET = 18
EXPORT_FORMATS = ("onnx", "torchscript")


def export_onnx(model: BiAlignNet, meta: ModelMeta, out: str | Path, height: int = 512, width: int = 1024,
                dynamic: bool = False, fp16: bool = False, space_to_depth: bool = False,
                notes: dict[str, Any] | None = None) -> Path:
    """Write the inference graph of ``model`` as an ONNX file (opset :data:`ONNX_OPSET`) and return its path.

    Fixed size ``height`` x ``width`` by default; ``dynamic=True`` keeps height and width symbolic
    (any multiple of 8 from 16 to 8192; the traced size must be one of them). The batch size is
    always dynamic. ``fp16`` stores weights and computes in half precision (for GPUs).
    ``space_to_depth`` selects the 12-channel form of the first convolutions (faster in int8 and
    in PyTorch, not in ONNX Runtime fp32).
    """
    check_size(height, width, dynamic)
    graph = InferenceGraph(model, meta, space_to_depth=space_to_depth).eval()
    graph.size_multiple = HEAD_FACTOR if dynamic else 1
    graph.logits_by_default = True
    if fp16:
        graph = graph.half()
    # A batch of 2: an example batch of 1 would be specialised to a constant.
    images = torch.zeros(2, height, width, 3, dtype=torch.uint8)
    batch = torch.export.Dim("batch", min=1, max=256)
    shapes: dict[int, Any] = {0: batch}
    if dynamic:
        lim = MAX_DYNAMIC_SIDE // HEAD_FACTOR
        shapes[1] = HEAD_FACTOR * torch.export.Dim("height_8", min=MIN_DYNAMIC_SIDE // HEAD_FACTOR, max=lim)
        shapes[2] = HEAD_FACTOR * torch.export.Dim("width_8", min=MIN_DYNAMIC_SIDE // HEAD_FACTOR, max=lim)
    # The exporter narrates every step on stdout and warns about optional torchvision operators;
    # keep the narration for the log at debug level only.
    chatter = io.StringIO()
    registry_log = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registry_log.level
    registry_log.setLevel(logging.ERROR)
    try:
        with torch.no_grad(), contextlib.redirect_stdout(chatter), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # deprecations inside the exporter itself
            program = torch.onnx.export(graph, (images,), dynamo=True, opset_version=ONNX_OPSET,
                                        input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
                                        dynamic_shapes={"images": shapes}, optimize=True, verbose=False)
    finally:
        registry_log.setLevel(level)
    LOG.debug("torch.onnx.export: %s", chatter.getvalue())
    info = GraphInfo(precision="fp16" if fp16 else "fp32", height=None if dynamic else height,
                     width=None if dynamic else width, size_multiple=HEAD_FACTOR if dynamic else 1,
                     space_to_depth=space_to_depth, notes=notes or {})
    proto = program.model_proto
    set_onnx_metadata(proto, meta, info)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(proto, str(out))
    return out


def export_torchscript(model: BiAlignNet, meta: ModelMeta, out: str | Path, height: int = 512,
                       width: int = 1024) -> Path:
    """Write the inference graph traced at ``height`` x ``width`` as TorchScript (for libtorch).

    The file takes the same input and gives the labels, edges and confidence of the ONNX export
    (not its logits), at the traced size; ``meta.json`` and ``graph.json`` inside it
    (``_extra_files``) carry the metadata.
    """
    check_size(height, width)
    graph = InferenceGraph(model, meta, space_to_depth=True).eval()
    images = torch.zeros(1, height, width, 3, dtype=torch.uint8)
    with torch.no_grad(), warnings.catch_warnings():
        # The tracer's own deprecation notice, and its notes on size checks fixed at the traced size.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(graph, (images,), check_trace=False)
    info = GraphInfo(height=height, width=width, space_to_depth=True)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(traced, str(out), _extra_files={"meta.json": json.dumps(meta.to_dict()),
                                                       "graph.json": info.to_json()})
    return out
