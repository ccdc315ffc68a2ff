"""The files a configuration runs: the checkpoint, or its ONNX export or int8 quantisation, cached."""

from __future__ import annotations

import hashlib
from pathlib import Path

from bialign_ros.bench.configs import BenchConfig
from bialign_ros.bench.frames import CALIBRATION_SEED, synthetic_frames


def file_digest(path: Path) -> str:
    """A short content hash, to key cached exports."""
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:12]


def prepare_weights(config: BenchConfig, weights: Path, work: Path, calib_size: tuple[int, int],
                    calib_frames: int) -> Path:
    """The file ``config`` runs: the checkpoint itself, or its (cached) ONNX export or int8 quantisation."""
    if config.backend == "torch" or weights.suffix != ".pt":
        return weights
    from bialign_ros.backends.torch_runner import load_inference_model

    stem = f"{weights.stem}-{file_digest(weights)}"
    h, w = calib_size
    if config.precision == "int8":
        from bialign_ros.backends.base import exact_weight_bits
        from bialign_ros.quantize import RECIPE, quantize_model

        # the recipe's choices name the file, so that a changed recipe is never read from the cache
        parts = "-".join(config.float_parts) or "all"
        bits = exact_weight_bits()  # as bialign_quantize chooses them on this machine
        out = work / f"{stem}.int8-{parts}.w{bits}.{h}x{w}.r{RECIPE}.onnx"
        if not out.is_file():
            model, meta = load_inference_model(weights)
            frames = list(synthetic_frames(calib_frames, h, w, CALIBRATION_SEED))
            report = quantize_model(model, meta, out, frames, dynamic=True, float_parts=config.float_parts,
                                    weight_bits=bits)
            print(report.summary(), flush=True)
        return out
    out = work / f"{stem}.{config.precision}.onnx"
    if not out.is_file():
        from bialign_ros.export import export_onnx

        model, meta = load_inference_model(weights)
        export_onnx(model, meta, out, h, w, dynamic=True, fp16=config.precision == "fp16")
    return out
