"""The contract of an exported graph: tensor names, metadata keys and layout, and size rules.

Everything a runtime needs to run an export (ONNX Runtime, TensorRT) and everything the exporter
writes into it lives here, without torch, onnx or the model, so an install that only runs
``.onnx`` files imports nothing else (see ``requirements/runtime-onnx.txt``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bialign_ros.backends.base import MAX_DYNAMIC_SIDE, MIN_DYNAMIC_SIDE
from bialign_ros.checkpoint import ModelMeta

META_KEY = "bialign_ros.meta"
GRAPH_KEY = "bialign_ros.graph"
INPUT_NAME = "images"
CONFIDENCE_OUTPUT = "confidence"
LOGITS_OUTPUTS = ("logits", "edge_logits")
OUTPUT_NAMES = ("labels", "edges", CONFIDENCE_OUTPUT, *LOGITS_OUTPUTS)
"""Graph outputs: uint8 labels, edge probability, the winning class's softmax probability, and the
class and edge logits these come from (for other output sizes; see :mod:`bialign_ros.upsample`).
Files exported before the confidence existed have only the first two, before the logits the first three."""
HEAD_FACTOR = 8
"""Output stride of the heads: the fast head path needs image sizes that are multiples of it."""


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
    """The model metadata and graph description stored in an ONNX file by the exporter.

    Reads the file with the ``onnx`` package, imported here only: it parses the metadata without
    building an inference session (which would load and optimise the whole graph). ONNX Runtime
    reads the same entries from its own session (:class:`~bialign_ros.backends.ort_runner.OrtRunner`).
    """
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"ONNX file not found: {path}")
    try:
        import onnx
    except ImportError as exc:
        raise ExportError(f"reading the metadata of {path} needs the onnx package "
                          "(requirements/dev.txt)") from exc
    try:
        proto = onnx.load_model(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises several unrelated types for bad files
        raise ExportError(f"cannot read ONNX file {path}: {exc}") from exc
    return parse_metadata({p.key: p.value for p in proto.metadata_props}, path)
