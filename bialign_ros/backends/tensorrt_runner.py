"""The TensorRT backend (NVIDIA GPUs, Jetson): an engine built from the ONNX export, run through the
``tensorrt`` Python API with PyTorch CUDA buffers. Only a machine with a GPU and TensorRT runs it."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from bialign_ros.backends.base import (
    MAX_DYNAMIC_SIDE,
    MIN_DYNAMIC_SIDE,
    BackendUnavailable,
    Runner,
    RunOutputs,
    check_batch,
)
from bialign_ros.backends.contract import (
    CONFIDENCE_OUTPUT,
    INPUT_NAME,
    LOGITS_OUTPUTS,
    OUTPUT_NAMES,
    read_onnx_metadata,
)

LOG = logging.getLogger(__name__)

ENGINE_SUFFIXES = (".engine", ".plan")
DEFAULT_MAX_BATCH = 4


def engine_sources(path: str | Path) -> tuple[Path, Path]:
    """(engine, onnx) for ``path``: an engine is read beside the ONNX file of the same stem, which
    holds the metadata; an ONNX file gets its engine built and cached as ``<stem>.engine``."""
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        return path.with_suffix(".engine"), path
    onnx_path = path.with_suffix(".onnx")
    if not onnx_path.is_file():
        raise ValueError(f"{path}: the TensorRT backend reads the class table from {onnx_path.name} beside "
                         "the engine; keep the ONNX file the engine was built from next to it")
    return path, onnx_path


class TensorRTRunner(Runner):
    """Runs a TensorRT engine on a CUDA device; only uint8 labels, edges and confidence travel back to the host."""

    name = "tensorrt"

    def __init__(self, path: str | Path, device: str = "cuda", max_batch: int = DEFAULT_MAX_BATCH) -> None:
        try:
            import tensorrt as trt
            import torch
        except ImportError as exc:
            raise BackendUnavailable("the tensorrt backend needs the tensorrt Python package (JetPack or "
                                     "pip install tensorrt) and a CUDA build of torch") from exc
        if not torch.cuda.is_available():
            raise BackendUnavailable("the tensorrt backend needs a CUDA GPU; none is available here")
        engine_path, onnx_path = engine_sources(path)
        self.meta, self.info = read_onnx_metadata(onnx_path)
        self.device = device if device.startswith("cuda") else "cuda"
        self.precision = self.info.precision
        self.fixed_size = self.info.fixed_size
        self.size_multiple = self.info.size_multiple
        self.max_batch = max_batch
        self._torch = torch
        logger = trt.Logger(trt.Logger.WARNING)
        if not engine_path.is_file():
            engine_path.write_bytes(self._build(trt, logger, onnx_path))
            LOG.info("built TensorRT engine %s from %s", engine_path, onnx_path)
        self.engine = trt.Runtime(logger).deserialize_cuda_engine(engine_path.read_bytes())
        if self.engine is None:
            raise ValueError(f"cannot deserialise {engine_path} (built for another GPU or TensorRT version?)")
        self.context = self.engine.create_execution_context()
        names = {self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)}
        self.output_names = tuple(name for name in OUTPUT_NAMES if name in names)
        self.has_logits = set(LOGITS_OUTPUTS) <= names

    def _build(self, trt, logger, onnx_path: Path) -> bytes:
        builder = trt.Builder(logger)
        network = builder.create_network(0)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse(onnx_path.read_bytes()):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise ValueError(f"TensorRT cannot parse {onnx_path}: {errors}")
        config = builder.create_builder_config()
        if self.precision in ("fp16", "int8"):
            config.set_flag(trt.BuilderFlag.FP16)
        if self.precision == "int8":
            config.set_flag(trt.BuilderFlag.INT8)  # the QDQ nodes carry the scales
        h, w = self.fixed_size or (512, 1024)
        low = self.fixed_size or (MIN_DYNAMIC_SIDE, MIN_DYNAMIC_SIDE)
        high = self.fixed_size or (min(2048, MAX_DYNAMIC_SIDE), min(4096, MAX_DYNAMIC_SIDE))
        profile = builder.create_optimization_profile()
        profile.set_shape(INPUT_NAME, (1, *low, 3), (1, h, w, 3), (self.max_batch, *high, 3))
        config.add_optimization_profile(profile)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise ValueError(f"TensorRT could not build an engine from {onnx_path}")
        return bytes(serialized)

    def run(self, images: np.ndarray, confidence: bool = False, logits: bool = False) -> RunOutputs:
        from bialign_ros.backends.torch_runner import quantized_to_host  # torch: needed here anyway

        check_batch(images)
        if confidence and CONFIDENCE_OUTPUT not in self.output_names:
            raise ValueError("this engine has no confidence output: build it from a new export")
        if logits and not self.has_logits:
            raise ValueError("this engine has no logits outputs: build it from a new export")
        torch = self._torch
        x = torch.from_numpy(images).pin_memory().to(self.device, non_blocking=True)
        self.context.set_input_shape(INPUT_NAME, tuple(x.shape))
        # Every output of the engine needs a buffer; each has the shape the input implies.
        prob_dtype = torch.float16 if self.precision == "fp16" else torch.float32
        dtypes = {"labels": torch.uint8, CONFIDENCE_OUTPUT: torch.float32}
        buffers = {name: torch.empty(tuple(self.context.get_tensor_shape(name)), dtype=dtypes.get(name, prob_dtype),
                                     device=self.device) for name in self.output_names}
        self.context.set_tensor_address(INPUT_NAME, x.data_ptr())
        for name, tensor in buffers.items():
            self.context.set_tensor_address(name, tensor.data_ptr())
        stream = torch.cuda.current_stream(x.device)
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError("TensorRT execution failed")
        raw = [buffers[name].float().cpu().numpy() for name in LOGITS_OUTPUTS] if logits else []
        return RunOutputs(buffers["labels"].cpu().numpy(), quantized_to_host(buffers["edges"]),
                          quantized_to_host(buffers[CONFIDENCE_OUTPUT]) if confidence else None, *raw)

    def close(self) -> None:
        self.context = self.engine = None
        self._torch.cuda.empty_cache()
