"""Static int8 quantisation of the inference graph for ONNX Runtime, and label agreement checks.

The recipe (measured on this project's CPUs): export the fp32 graph with the space-to-depth
stems, run ``quant_pre_process`` (shape inference and graph clean-up), then ``quantize_static``
in QDQ format with per-channel symmetric int8 weights and asymmetric uint8 activations (int8
activations are about twice as slow here), weights on 7 or 8 bits (see below),
activation ranges from the 99.99th percentile of the user's calibration frames (one frame in
memory at a time). A tensor whose values are non-zero
but too close to zero for ONNX Runtime's 2048 float32 histogram bins (within about 1e-42) takes
its min/max range instead, and the report names it (:func:`narrow_tensors_take_minmax`).

Which parts stay in floating point is a deliberate choice (:data:`FLOAT_PARTS`):

- ``flow`` (on by default): the flow branch of both alignment modules -- the flow convolution, the
  gate, the sampling grid and ``grid_sample``. A flow error of a fraction of a pixel moves every
  sample, and the branch is tiny (2-channel outputs), so float costs almost nothing here.
- ``logits`` (on by default): the classifiers keep int8 inputs and weights but return float
  logits (ONNX Runtime's QGemm with a float output) instead of uint8 ones, whose coarse steps
  flip near-ties in the argmax. Measured here it is also faster: no requantisation of 10 M
  values, and no cast before the argmax.
- ``classifier`` (optional): the label classifier entirely in float; it costs about a quarter of
  the network's time.
- ``spatial`` (optional): the spatial path (its four convolutions, from the image to the 1/8
  features the alignment reads) entirely in float. The fine detail it carries suffers most from
  8-bit steps: on an AVX2-only CPU with 7-bit weights and the full-resolution synthetic weights it
  took label agreement with fp32 from 98.7 % to 99.4 % (512 x 1024) and from 97.6 % to 99.0 %
  (1024 x 2048), for 10-15 % more time a frame. No other part came near: each backbone stage, the
  pyramid pooling, the label head's convolution and the alignment's input reductions in float changed it
  by 0.1 point at most.

Always in floating point: the pyramid pooling's bin averages (:func:`pooling_node_names`). The
exported graph computes them as two matrix products whose matrices hold one over each bin's length,
built from the frame's size, so their values grow as the frame shrinks: ranges calibrated at one
size clip them on smaller frames, and the context features go wrong everywhere. Measured with the
full-resolution synthetic weights on 8 frames at 512 x 1024: quantised, label agreement with fp32
fell to 84.6 % at half that size and 64.7 % at a quarter (97.0 % and 81.8 % of fp32's confident
labels); kept in float, 98.7 % and 95.4 % (100.0 % and 99.9 %), unchanged at and above the
calibration size.

Weights take the bits this CPU multiplies exactly (:func:`~bialign_ros.backends.base.exact_weight_bits`):
8 with VNNI or AMX, 7 without (ONNX Runtime's ``reduce_range``). On x86 CPUs without VNNI, ONNX
Runtime multiplies uint8 activations by int8 weights with ``vpmaddubsw``, whose int16 sum of two
products saturates with full-range weights (255 x 127 x 2 > 32767); 7-bit weights keep it exact.
The file records its bits, and ONNX Runtime warns when a file with 8-bit weights runs on a CPU
without VNNI. Measured with the full-resolution synthetic weights: on an AVX2-only CPU, 7 bits
against 8 took label agreement with fp32 from 98.6 % to 98.8 % (512 x 1024) and from 96.7 % to
98.0 % (1024 x 2048); on a CPU with AVX-512 VNNI, 8 bits against 7 took it from 97.5 % to 99.1 %
(512 x 1024), at the same speed.

With uint8 logits (``logits`` not kept in float) the argmax reads them through a plain cast
instead of a dequantisation (see :func:`argmax_after_cast`): the same labels, a third of the time.
"""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
import onnx

from bialign_ros.backends.base import exact_weight_bits
from bialign_ros.backends.contract import INPUT_NAME, GraphInfo, parse_metadata, set_onnx_metadata
from bialign_ros.checkpoint import ModelMeta
from bialign_ros.export import export_onnx
from bialign_ros.image_files import read_rgb
from bialign_ros.model import BiAlignNet
from bialign_ros.model.context import BinAveragePool

LOG = logging.getLogger(__name__)

FLOAT_PARTS: tuple[str, ...] = ("flow", "logits", "classifier", "spatial")
"""Parts of the graph that can be kept in floating point (see the module docstring)."""
DEFAULT_FLOAT_PARTS: tuple[str, ...] = ("flow", "logits")
WEIGHT_BITS = (7, 8)
"""Bits of each quantised weight: 7 is exact on every x86 CPU (see the module docstring), 8 only with VNNI."""
CALIBRATION_METHODS = {"percentile": "Percentile", "minmax": "MinMax"}
"""Activation-range methods: ours -> ONNX Runtime's CalibrationMethod name."""
CALIBRATION_PERCENTILE = 99.99
RECIPE = 2
"""The recipe's version, raised when the same arguments make a different file (2: the pooling in float)."""
ALIGN_SCOPES = ("spatial2Context", "context2Spatial")
SPATIAL_SCOPE = "sp"
SCOPE_KEY = "pkg.torch.onnx.name_scopes"


@dataclass
class QuantizationReport:
    """What :func:`quantize_model` did and how well the int8 labels agree with fp32."""

    out: Path
    calibration_frames: int
    held_out_frames: int
    float_parts: tuple[str, ...]
    float_nodes: int
    method: str
    agreement: float | None
    """Fraction of held-out pixels whose int8 label equals the fp32 graph's (None without held-out frames)."""
    weight_bits: int = 7
    minmax_tensors: tuple[str, ...] = field(default=())
    """Tensors too narrow for percentile bins, which took their min/max range."""

    def summary(self) -> str:
        """One line for logs and CLIs."""
        agree = "no held-out frames" if self.agreement is None else (
            f"label agreement with fp32 on {self.held_out_frames} held-out frame(s): "
            f"{100 * self.agreement:.3f}%")
        vnni = ", for CPUs with VNNI" if self.weight_bits == 8 else ""
        return (f"{self.out}: int8 (QDQ, u8 activations, per-channel {self.weight_bits}-bit s8 "
                f"weights{vnni}), {self.calibration_frames} "
                f"calibration frame(s) ({self.method} ranges), float parts: "
                f"{', '.join(self.float_parts) or 'none'} ({self.float_nodes} nodes); {agree}{self._fallback()}")

    def _fallback(self) -> str:
        if not self.minmax_tensors:
            return ""
        shown = ", ".join(self.minmax_tensors[:3]) + (", ..." if len(self.minmax_tensors) > 3 else "")
        return (f"; {len(self.minmax_tensors)} tensor(s) too narrow for percentile bins took their "
                f"min/max range ({shown})")


@contextlib.contextmanager
def narrow_tensors_take_minmax(ranges: dict[str, tuple[np.ndarray, np.ndarray]]) -> Iterator[None]:
    """Within the block, ONNX Runtime's percentile calibration gives a tensor it cannot histogram
    its min/max range instead of failing; ``ranges`` receives those tensors and ranges.

    The percentile calibrator bins each tensor's values in 2048 float32 bins over +-max|x|.
    Values that are non-zero but within about 1e-42 of zero leave bins float32 cannot tell apart,
    and numpy's "Too many bins for data range" ends the whole quantisation. Such a tensor (in any
    calibration frame) keeps the min and max of all its values: ``--calibration minmax`` for it
    alone.
    """
    from onnxruntime.quantization.calibrate import HistogramCollector

    original_collect, original_result = HistogramCollector.collect, HistogramCollector.compute_collection_result

    def collect(self: HistogramCollector, name_to_arr: dict) -> None:
        if self.method != "percentile":
            return original_collect(self, name_to_arr)
        collect_one = self.collect_absolute_value if self.symmetric else self.collect_value
        for name, arr in name_to_arr.items():
            if name not in ranges:
                try:
                    collect_one({name: arr})
                    continue
                except ValueError as exc:
                    if "Too many bins" not in str(exc):
                        raise
                    seen = self.histogram_dict.pop(name, None)  # earlier frames' min and max
                    ranges[name] = (seen[2], seen[3]) if seen else (np.float32(np.inf), np.float32(-np.inf))
            values = np.asarray(arr, dtype=np.float32)
            low, high = ranges[name]
            ranges[name] = (np.minimum(low, values.min()), np.maximum(high, values.max()))

    def result(self: HistogramCollector) -> dict:
        thresholds = original_result(self) if self.histogram_dict or self.method != "percentile" else {}
        none = np.int64(0)  # the two leading histogram counts ONNX Runtime carries along, unused for ranges
        narrow = {name: (np.float32(lo), np.float32(hi), none, none) for name, (lo, hi) in ranges.items()}
        return {**thresholds, **narrow}

    HistogramCollector.collect, HistogramCollector.compute_collection_result = collect, result
    try:
        yield
    finally:
        HistogramCollector.collect, HistogramCollector.compute_collection_result = original_collect, original_result


def read_frames(paths: Iterable[Path], height: int, width: int) -> list[np.ndarray]:
    """Read images as RGB uint8 resized to ``height`` x ``width`` (ValueError naming an unreadable file)."""
    frames = []
    for path in paths:
        rgb = read_rgb(path)
        if rgb.shape[:2] != (height, width):
            rgb = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
        frames.append(rgb)
    return frames


def _scopes(node) -> list[str]:
    for prop in node.metadata_props:
        if prop.key == SCOPE_KEY:
            return json.loads(prop.value.replace("'", '"'))
    return []


def float_node_names(proto, parts: Sequence[str]) -> list[str]:
    """Names of the nodes of ``proto`` (an exported fp32 graph) that ``parts`` keep in floating point.

    Nodes are found by the module scopes the exporter records: ``flow`` takes everything inside
    the alignment modules except their two input reductions (``down_h``, ``down_l``);
    ``classifier`` takes the label head's 1x1 classifier; ``spatial`` every node of the spatial
    path. ``logits`` excludes no node: only the classifiers' outputs stay unquantised (see
    :func:`quantize_model`).
    """
    unknown = set(parts) - set(FLOAT_PARTS)
    if unknown:
        raise ValueError(f"unknown float parts {sorted(unknown)}; choose from {', '.join(FLOAT_PARTS)}")
    names = []
    for node in proto.graph.node:
        scopes = _scopes(node)
        top = scopes[1] if len(scopes) > 1 else ""
        reduction = any(s.endswith((".down_h", ".down_l")) for s in scopes)
        if "flow" in parts and top in ALIGN_SCOPES and not reduction:
            names.append(node.name)
        elif "classifier" in parts and "label_head.classifier" in scopes:
            names.append(node.name)
        elif "spatial" in parts and top == SPATIAL_SCOPE:
            names.append(node.name)
    if "logits" in parts:
        names += _after_classifiers(proto)
    return names


def pooling_node_names(proto, model: BiAlignNet) -> list[str]:
    """Names of the nodes of ``proto`` (an exported fp32 graph of ``model``) inside its bin-average
    pools (:class:`~bialign_ros.model.context.BinAveragePool`), found by their module scopes: the
    size-dependent averaging matrices and their products, which stay in floating point."""
    pools = {name for name, module in model.named_modules() if isinstance(module, BinAveragePool)}
    return [node.name for node in proto.graph.node if pools & set(_scopes(node))]


def _after_classifiers(proto) -> list[str]:
    """The nodes that consume the classifiers' outputs, up to the graph outputs (reshapes, argmax,
    sigmoid): left unquantised, they keep the logits in float all the way."""
    consumers: dict[str, list] = {}
    for node in proto.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    frontier = [n for n in proto.graph.node if n.op_type == "Gemm" and _scopes(n)[1:2] in (["label_head"],
                                                                                         ["edge_head"])]
    seen: dict[str, None] = {}
    while frontier:
        node = frontier.pop()
        for out in node.output:
            for consumer in consumers.get(out, []):
                if consumer.name not in seen:
                    seen[consumer.name] = None
                    frontier.append(consumer)
    return list(seen)


def argmax_after_cast(proto) -> int:
    """Feed every ArgMax that reads a per-tensor DequantizeLinear from a Cast of the uint8 tensor instead.

    Exact, since dequantisation with a positive scale is strictly increasing. It is also faster:
    ONNX Runtime would otherwise drop the DequantizeLinear and run its (slow) uint8 ArgMax, while
    the cast and a float ArgMax over the innermost axis together take about a third of that.
    Returns how many ArgMax nodes were changed.
    """
    from onnx import TensorProto, helper

    producers = {out: node for node in proto.graph.node for out in node.output}
    changed = 0
    for node in proto.graph.node:
        if node.op_type != "ArgMax":
            continue
        dq = producers.get(node.input[0])
        if dq is None or dq.op_type != "DequantizeLinear" or _is_per_axis(proto, dq):
            continue
        cast = helper.make_node("Cast", [dq.input[0]], [f"{node.input[0]}_as_float"], to=TensorProto.FLOAT,
                                name=f"{node.name}_cast")
        proto.graph.node.insert(list(proto.graph.node).index(node), cast)
        node.input[0] = cast.output[0]
        changed += 1
    _drop_unused(proto)
    return changed


def _is_per_axis(proto, dq) -> bool:
    scale = next((t for t in proto.graph.initializer if t.name == dq.input[1]), None)
    return scale is None or int(np.prod(scale.dims)) > 1


def _drop_unused(proto) -> None:
    """Remove nodes whose outputs nothing reads (the graph outputs count as readers)."""
    while True:
        used = {name for node in proto.graph.node for name in node.input}
        used |= {o.name for o in proto.graph.output}
        dead = [node for node in proto.graph.node if not any(out in used for out in node.output)]
        if not dead:
            return
        for node in dead:
            proto.graph.node.remove(node)


class _FrameReader:
    """Calibration frames for ONNX Runtime's calibrator, one at a time.

    ``__len__`` and ``set_range`` let the calibrator take them in slices (``CalibStridedMinMax``),
    so that it holds the activations of one frame at a time instead of all of them.
    """

    def __init__(self, frames: Sequence[np.ndarray]) -> None:
        self._frames = list(frames)
        self._it = iter(self._frames)

    def __len__(self) -> int:
        return len(self._frames)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._it = iter(self._frames[start_index:end_index])

    def get_next(self) -> dict[str, np.ndarray] | None:
        frame = next(self._it, None)
        return None if frame is None else {INPUT_NAME: frame[None]}

    def __iter__(self):
        return self

    def __next__(self):
        item = self.get_next()
        if item is None:
            raise StopIteration
        return item


def label_agreement(reference, candidate, frames: Sequence[np.ndarray]) -> float:
    """Fraction of pixels where two runners (``run`` on a batch) give the same label over ``frames``."""
    same = total = 0
    for frame in frames:
        a = reference.run(frame[None])[0]
        b = candidate.run(frame[None])[0]
        same += int((a == b).sum())
        total += a.size
    return same / total


def quantize_model(model: BiAlignNet, meta: ModelMeta, out: str | Path, calibration: Sequence[np.ndarray],
                   held_out: Sequence[np.ndarray] = (), dynamic: bool = True,
                   float_parts: Sequence[str] = DEFAULT_FLOAT_PARTS, method: str = "percentile",
                   threads: int = 0, weight_bits: int | None = None) -> QuantizationReport:
    """Write a static int8 ONNX model of ``model`` calibrated on ``calibration`` frames (RGB uint8,
    all of one size, which is also the traced size) and measure its label agreement with the fp32
    export on the ``held_out`` frames (never used for calibration).

    ``dynamic`` keeps height and width symbolic (multiples of 8), so one file serves every camera
    size; otherwise the file takes only the calibration size. ``method`` sets the activation
    ranges: ``percentile`` (99.99 % of each tensor's magnitudes; one to two points more label
    agreement than ``minmax`` in our measurements) or ``minmax``. ``weight_bits`` is 7 (exact on
    every x86 CPU), 8 (for CPUs with VNNI only) or None: the bits this CPU multiplies exactly.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from bialign_ros.backends.ort_runner import OrtRunner

    if not calibration:
        raise ValueError("quantisation needs at least one calibration frame")
    if method not in CALIBRATION_METHODS:
        raise ValueError(f"calibration method must be one of {', '.join(CALIBRATION_METHODS)}; "
                         f"got {method!r}")
    if weight_bits is None:
        weight_bits = exact_weight_bits()
    if weight_bits not in WEIGHT_BITS:
        raise ValueError(f"weight bits must be one of {', '.join(map(str, WEIGHT_BITS))}; got {weight_bits}")
    sizes = {f.shape for f in calibration} | {f.shape for f in held_out}
    if len(sizes) != 1:
        raise ValueError(f"calibration and held-out frames must share one size, got {sorted(sizes)}")
    height, width = calibration[0].shape[:2]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bialign_quantize_") as tmp:
        fp32 = export_onnx(model, meta, Path(tmp) / "fp32.onnx", height, width, dynamic=dynamic,
                           space_to_depth=True)
        prepared = Path(tmp) / "prepared.onnx"
        # ONNX Runtime's symbolic shape inference fails on fixed-size exports of this graph (it loses
        # the shape of an elementwise op); ONNX's own shape inference, which also runs, is enough.
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        prepared_proto = onnx.load_model(str(prepared))
        excluded = float_node_names(prepared_proto, float_parts)
        pooling = pooling_node_names(prepared_proto, model)
        narrow: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        with narrow_tensors_take_minmax(narrow):
            quantize_static(str(prepared), str(out), _FrameReader(calibration), quant_format=QuantFormat.QDQ,
                            per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=getattr(CalibrationMethod, CALIBRATION_METHODS[method]),
                            nodes_to_exclude=excluded + pooling, reduce_range=weight_bits == 7,
                            extra_options={"WeightSymmetric": True, "ActivationSymmetric": False,
                                           "CalibPercentile": CALIBRATION_PERCENTILE, "CalibStridedMinMax": 1,
                                           # the two classifiers are the graph's only Gemm nodes
                                           "OpTypesToExcludeOutputQuantization":
                                               ["Gemm"] if "logits" in float_parts else []})
        proto = onnx.load_model(str(out))
        rewired = argmax_after_cast(proto)
        _, info = parse_metadata({p.key: p.value for p in onnx.load_model(str(fp32), load_external_data=False)
                                  .metadata_props}, fp32)
        notes = {"calibration_frames": len(calibration), "calibration_size": [height, width],
                 "calibration_method": method, "weight_bits": weight_bits, "float_parts": list(float_parts),
                 "argmax_after_cast": rewired > 0, "minmax_tensors": sorted(narrow), "pooling_in_float": True}
        int8_info = GraphInfo(precision="int8", height=info.height, width=info.width,
                              size_multiple=info.size_multiple, space_to_depth=True, notes=notes)
        set_onnx_metadata(proto, meta, int8_info)
        onnx.save_model(proto, str(out))
        agreement = None
        if held_out:
            agreement = label_agreement(OrtRunner(fp32, threads=threads), OrtRunner(out, threads=threads),
                                        held_out)
            notes.update(held_out_frames=len(held_out), label_agreement_with_fp32=agreement)
            set_onnx_metadata(proto, meta, replace(int8_info, notes=notes))
            onnx.save_model(proto, str(out))
    return QuantizationReport(out=out, calibration_frames=len(calibration), held_out_frames=len(held_out),
                              float_parts=tuple(float_parts), float_nodes=len(excluded), method=method,
                              agreement=agreement, weight_bits=weight_bits, minmax_tensors=tuple(sorted(narrow)))
