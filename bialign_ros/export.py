"""Exports of the inference graph: ONNX (for ONNX Runtime and TensorRT) and TorchScript.

Every export takes uint8 RGB images (N x H x W x 3, input ``images``) and returns ``labels``
(N x H x W uint8 train IDs) and ``edges`` (N x H x W edge probability), with normalisation,
argmax and the edge sigmoid inside (see :mod:`bialign_ros.backends.graph`). ONNX files carry the
model metadata (class table, normalisation, channel order) and a description of the graph (size,
precision) in their ``metadata_props``, so a node or CLI needs only the file's path.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import onnx
import torch

from bialign_ros.backends.base import MAX_DYNAMIC_SIDE, MIN_DYNAMIC_SIDE
from bialign_ros.backends.graph import HEAD_FACTOR, InferenceGraph
from bialign_ros.checkpoint import ModelMeta
from bialign_ros.model import BiAlignNet

LOG = logging.getLogger(__name__)

ONNX_OPSET = 18
META_KEY = "bialign_ros.meta"
GRAPH_KEY = "bialign_ros.graph"
INPUT_NAME = "images"
OUTPUT_NAMES = ("labels", "edges")
EXPORT_FORMATS = ("onnx", "torchscript")


class ExportError(ValueError):
    """An export file is not what it should be (not a bialign_ros export, wrong shape, ...)."""


@dataclass(frozen=True)
class GraphInfo:
    """How an exported graph was built; stored as JSON under :data:`GRAPH_KEY`."""

    precision: str = "fp32"
    """fp32, fp16 or int8."""
    height: int | None = None
    """Fixed input height, or None for a dynamic size."""
    width: int | None = None
    size_multiple: int = 1
    """Dynamic sizes must be multiples of this."""
    space_to_depth: bool = False
    notes: dict[str, Any] = field(default_factory=dict)
    """Free-form facts, e.g. the quantisation settings and the measured label agreement."""

    @property
    def fixed_size(self) -> tuple[int, int] | None:
        """(height, width) of a fixed-size graph, else None."""
        return None if self.height is None else (self.height, self.width)

    def to_json(self) -> str:
        """The JSON stored in the file."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> GraphInfo:
        """Inverse of :meth:`to_json`."""
        return cls(**json.loads(text))


def check_size(height: int, width: int, dynamic: bool = False) -> None:
    """ValueError unless (height, width) can be exported (dynamic: a multiple of 8, at least 16)."""
    low = MIN_DYNAMIC_SIDE if dynamic else 8
    if not (low <= height <= MAX_DYNAMIC_SIDE and low <= width <= MAX_DYNAMIC_SIDE):
        raise ValueError(f"export size {height}x{width} out of range: each side must be in "
                         f"[{low}, {MAX_DYNAMIC_SIDE}]")
    if dynamic and (height % HEAD_FACTOR or width % HEAD_FACTOR):
        raise ValueError(f"a dynamic export traces a size that is a multiple of {HEAD_FACTOR}; "
                         f"got {height}x{width}")


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


def set_onnx_metadata(proto: Any, meta: ModelMeta, info: GraphInfo) -> None:
    """Store ``meta`` and ``info`` in an ``onnx.ModelProto`` (replacing earlier values)."""
    values = {META_KEY: json.dumps(meta.to_dict(), sort_keys=True), GRAPH_KEY: info.to_json()}
    kept = [p for p in proto.metadata_props if p.key not in values]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    for key, value in values.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "bialign_ros"
    proto.doc_string = (f"BiAlignNet {meta.arch}: uint8 RGB images N x H x W x 3 in; labels (uint8 train "
                        f"IDs, {meta.num_classes} classes) and edges (probability) N x H x W out.")


def parse_metadata(props: dict[str, str], source: str | Path) -> tuple[ModelMeta, GraphInfo]:
    """The model metadata and graph description from an export's key/value metadata."""
    if META_KEY not in props or GRAPH_KEY not in props:
        raise ExportError(f"{source} has no bialign_ros metadata; make it with bialign_export or "
                          "bialign_quantize")
    try:
        return ModelMeta.from_dict(json.loads(props[META_KEY])), GraphInfo.from_json(props[GRAPH_KEY])
    except (ValueError, TypeError) as exc:
        raise ExportError(f"{source}: unreadable bialign_ros metadata: {exc}") from exc


def read_onnx_metadata(path: str | Path) -> tuple[ModelMeta, GraphInfo]:
    """The model metadata and graph description stored in an ONNX file by :func:`export_onnx`."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"ONNX file not found: {path}")
    try:
        proto = onnx.load_model(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises several unrelated types for bad files
        raise ExportError(f"cannot read ONNX file {path}: {exc}") from exc
    return parse_metadata({p.key: p.value for p in proto.metadata_props}, path)


def export_torchscript(model: BiAlignNet, meta: ModelMeta, out: str | Path, height: int = 512,
                       width: int = 1024) -> Path:
    """Write the inference graph traced at ``height`` x ``width`` as TorchScript (for libtorch).

    The file takes the same input and gives the same outputs as the ONNX export, at the traced
    size; ``meta.json`` and ``graph.json`` inside it (``_extra_files``) carry the metadata.
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
