"""Static int8 quantisation: the CLI on user frames, what stays in float, the exact argmax, agreement."""

from __future__ import annotations

import logging
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from bialign_ros.backends import ort_runner
from bialign_ros.backends.base import exact_weight_bits
from bialign_ros.backends.ort_runner import OrtRunner
from bialign_ros.export import read_onnx_metadata
from bialign_ros.image_files import find_images
from bialign_ros.quantize import (
    CALIBRATION_METHODS,
    DEFAULT_FLOAT_PARTS,
    argmax_after_cast,
    float_node_names,
    quantize_model,
    read_frames,
)
from bialign_ros.segmenter import Segmenter
from bialign_ros.synthetic import render_scene

H, W = 64, 96  # the size of the exports in conftest.py
CPU = ["CPUExecutionProvider"]


def _quantize(weights, calib, out, *extra):
    cmd = [sys.executable, "-m", "bialign_ros.cli.quantize", "--weights", weights, "--calib", calib,
           "--out", out, "--height", H, "--width", W, *extra]
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=900)


def test_file_records_how_it_was_made(int8_file, trained_weights, calib_dir):
    meta, info = read_onnx_metadata(int8_file)
    assert info.precision == "int8" and info.fixed_size is None and info.size_multiple == 8
    notes = info.notes
    assert notes["calibration_frames"] == 3 and notes["held_out_frames"] == 1
    assert notes["calibration_method"] == "percentile" and notes["weight_bits"] == exact_weight_bits()
    assert notes["float_parts"] == ["flow", "logits"] and notes["pooling_in_float"] is True
    # the figure recorded is the int8 labels' measured agreement with fp32 on the held-out frame
    held_out = read_frames(find_images(calib_dir)[-1:], H, W)[0]
    fp32 = Segmenter.from_checkpoint(trained_weights, device="cpu", precision="fp32", warmup=False)
    same = OrtRunner(int8_file).run(held_out[None]).labels == fp32.runner.run(held_out[None]).labels
    assert notes["label_agreement_with_fp32"] == pytest.approx(same.mean(), abs=0.005)
    assert meta.num_classes == 19


def test_weights_are_int8_except_the_flow_branch(int8_file):
    proto = onnx.load_model(str(int8_file))
    inits = {t.name: t for t in proto.graph.initializer}
    assert inits["label_head.conv.conv.weight_quantized"].data_type == TensorProto.INT8
    assert inits["backbone.stage3_1.0.conv1.weight_quantized"].data_type == TensorProto.INT8
    for branch in ("spatial2Context", "context2Spatial"):
        assert inits[f"{branch}.flow_make.taps.weight"].data_type == TensorProto.FLOAT
        assert inits[f"{branch}.down_h.weight_quantized"].data_type == TensorProto.INT8
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count("QuantizeLinear") > 50 and "GridSample" in ops
    # the logits stay float from the classifier (Gemm) to the argmax
    producers = {o: n for n in proto.graph.node for o in n.output}
    node, chain = next(n for n in proto.graph.node if n.op_type == "ArgMax"), []
    while node.op_type != "Gemm":
        node = producers[node.input[0]]
        chain.append(node.op_type)
    assert chain == ["Reshape", "Gemm"]


def _int8_weights(path) -> list[np.ndarray]:
    return [numpy_helper.to_array(t) for t in onnx.load_model(str(path)).graph.initializer
            if t.data_type == TensorProto.INT8]


def _max_weight(path) -> int:
    return max(int(np.abs(w.astype(np.int16)).max()) for w in _int8_weights(path))


def test_weights_take_the_bits_this_cpu_multiplies_exactly_unless_told(int8_file, untrained_weights, tmp_path):
    """Seven bits keep ONNX Runtime's u8 x s8 products from saturating on CPUs without VNNI; with
    VNNI or AMX the default keeps the eighth bit."""
    from bialign_ros.backends.torch_runner import load_inference_model

    assert len(_int8_weights(int8_file)) > 50
    assert _max_weight(int8_file) == {7: 64, 8: 127}[exact_weight_bits()]
    model, meta = load_inference_model(untrained_weights)
    frames = [render_scene(720 + i, H, W).image for i in range(2)]
    for bits, largest in ((7, 64), (8, 127)):
        report = quantize_model(model, meta, tmp_path / f"w{bits}.int8.onnx", frames, dynamic=False, weight_bits=bits)
        assert f"per-channel {bits}-bit s8 weights" in report.summary()
        assert ("for CPUs with VNNI" in report.summary()) == (bits == 8)
        assert _max_weight(report.out) == largest
        assert read_onnx_metadata(report.out)[1].notes["weight_bits"] == bits
    with pytest.raises(ValueError, match="weight bits must be one of 7, 8"):
        quantize_model(model, meta, "unused.onnx", frames, weight_bits=4)
    proc = _quantize(untrained_weights, tmp_path / "nowhere", tmp_path / "x.onnx", "--weight-bits", "6")
    assert proc.returncode == 2 and "--weight-bits: invalid choice: '6'" in proc.stderr


def test_eight_bits_need_vnni_or_amx():
    assert exact_weight_bits(frozenset({"avx2", "fma"})) == 7
    assert exact_weight_bits(frozenset()) == 7
    for flag in ("avx512_vnni", "avx_vnni", "amx_int8"):
        assert exact_weight_bits(frozenset({"avx2", flag})) == 8


def test_a_file_with_eight_bit_weights_warns_on_a_cpu_without_vnni(tmp_path, untrained_weights, monkeypatch, caplog):
    from bialign_ros.backends.torch_runner import load_inference_model

    model, meta = load_inference_model(untrained_weights)
    frames = [render_scene(730, H, W).image]
    files = {bits: quantize_model(model, meta, tmp_path / f"w{bits}.onnx", frames, dynamic=False,
                                  weight_bits=bits).out for bits in (7, 8)}
    monkeypatch.setattr(ort_runner, "exact_weight_bits", lambda: 7)  # the CPU as one without VNNI sees it
    def warnings() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == ort_runner.LOG.name]

    with caplog.at_level(logging.WARNING, logger=ort_runner.LOG.name):
        OrtRunner(files[7])
        assert not warnings()
        OrtRunner(files[8])
    assert warnings() == [
        "w8.onnx has 8-bit int8 weights, which ONNX Runtime multiplies exactly only on CPUs with VNNI or AMX; "
        "this CPU has neither, so some products saturate and the labels stray further from fp32: quantise "
        "with bialign_quantize --weight-bits 7 for it"]


def test_an_int8_file_keeps_the_pyramid_pooling_in_float(int8_file):
    """The bin averages' matrices (one over each bin's length, built from the frame's size) reach their
    products unquantised; the features they average come dequantised."""
    proto = onnx.load_model(str(int8_file))
    producers = {o: n.op_type for n in proto.graph.node for o in n.output}
    products = [n for n in proto.graph.node if n.op_type == "MatMul"]
    assert len(products) == 8  # two per pool, four pools
    for node in products:
        inputs = sorted(producers.get(i, "input") for i in node.input)
        assert inputs.count("DequantizeLinear") <= 1 and set(inputs) - {"DequantizeLinear"} <= {
            "Div", "Transpose", "MatMul"}, (node.name, inputs)
    assert read_onnx_metadata(int8_file)[1].notes["pooling_in_float"] is True


def test_int8_labels_agree_with_fp32_below_the_calibration_size(trained_weights, tmp_path):
    """Calibrated at 256x128, the file serves 128x64 (input_scale 0.5): with the pooling quantised, its
    ranges clipped the pooling matrices there and agreement fell to 90 %."""
    from bialign_ros.backends.torch_runner import load_inference_model

    model, meta = load_inference_model(trained_weights)
    calibration = [render_scene(500 + i, 128, 256).image for i in range(3)]
    out = quantize_model(model, meta, tmp_path / "m.int8.onnx", calibration, weight_bits=7).out
    frames = np.stack([render_scene(900 + i, 64, 128).image for i in range(6)])
    fp32 = Segmenter.from_checkpoint(trained_weights, device="cpu", precision="fp32", warmup=False)
    same = OrtRunner(out).run(frames).labels == fp32.runner.run(frames).labels
    assert same.mean() >= 0.98, same.mean()


def test_an_older_int8_file_run_below_its_calibration_size_warns_once_per_size(int8_file, older_int8_file,
                                                                             caplog):
    """A file whose pyramid pooling is quantised (made before it stayed in float) is calibrated on 96x64
    frames: input_scale 0.5 on a camera of that size runs it at 48x32."""
    image = render_scene(740, H, W).image
    older = older_int8_file

    def warnings() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == ort_runner.LOG.name]

    with caplog.at_level(logging.WARNING, logger=ort_runner.LOG.name):
        for _ in range(2):
            Segmenter.from_checkpoint(older).segment(image)
        Segmenter.from_checkpoint(older, input_scale=2.0).segment(image)
        current = Segmenter.from_checkpoint(int8_file, input_scale=0.5)
        assert current.runner.calibration_size is None
        current.segment(image)
        assert not warnings()  # at its calibration size and above, and a current file at any size
        half = Segmenter.from_checkpoint(older, input_scale=0.5)
        assert half.runner.calibration_size == (H, W)
        for _ in range(3):
            half.segment(image)
    assert warnings() == [
        f"older.int8.onnx was calibrated on {W}x{H} frames and runs at {W // 2}x{H // 2} "
        "(the camera's size times input_scale): its pyramid pooling is quantised, which clips below its "
        "calibration size, so its labels agree less with fp32; quantise it again with this bialign_quantize, "
        "which keeps the pooling in float for every size"]


def test_the_warm_up_frame_does_not_count_as_a_frame_below_the_calibration_size(int8_file, caplog):
    """The Segmenter's warm-up runs a 512x256 blank frame: an older file calibrated at 1024x512 (the
    default of bialign_quantize) warns about the camera's frames, not about that one."""
    seg = Segmenter.from_checkpoint(int8_file, warmup=False)
    seg.runner.calibration_size = (512, 1024)
    with caplog.at_level(logging.WARNING, logger=ort_runner.LOG.name):
        seg.warm_up()
        assert not caplog.records
        assert not seg.runner.warming_up
        seg.segment(np.zeros((256, 512, 3), np.uint8))
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == [
        f"{int8_file.name} was calibrated on 1024x512 frames and runs at 512x256"]


def test_int8_labels_agree_with_fp32_where_trained_weights_are_confident(int8_file, trained_weights):
    """The README's promise, on weights trained for these frames: every label (>= 99.9 %) where fp32's
    two best logits differ by at least 1, and >= 99 % of all labels (broken quantisation: about 1/19)."""
    from bialign_ros.bench.measure import confident_pixels

    frames = np.stack([render_scene(1000 + i, 64, 128).image for i in range(4)])
    fp32 = Segmenter.from_checkpoint(trained_weights, device="cpu", precision="fp32", warmup=False)
    confident = confident_pixels(fp32, frames)
    same = OrtRunner(int8_file).run(frames).labels == fp32.runner.run(frames).labels
    assert confident.mean() > 0.3, confident.mean()  # the weights are confident: the claim is not vacuous
    assert same[confident].mean() >= 0.999 and same.mean() >= 0.99, (same[confident].mean(), same.mean())


def test_int8_confidence_is_the_fp32_softmax_maximum_within_a_few_levels(int8_file, trained_weights):
    import torch

    from bialign_ros.backends.torch_runner import TorchRunner, load_inference_model

    model, meta = load_inference_model(trained_weights)
    frames = np.stack([render_scene(910 + i, H, W).image for i in range(2)])
    fp32 = TorchRunner(model, meta, torch.device("cpu")).run(frames, confidence=True).confidence
    int8 = OrtRunner(int8_file).run(frames, confidence=True).confidence
    assert int8.shape == fp32.shape and int8.dtype == np.float32
    gap = np.abs(int8 - fp32)
    # The published map is round(255 p): on average within one level, 99 % of pixels within four.
    assert gap.mean() <= 1 / 255 and np.percentile(gap, 99) <= 4 / 255, (gap.mean(), np.percentile(gap, 99))


def test_segmenter_runs_the_int8_file_at_any_size(int8_file):
    seg = Segmenter.from_checkpoint(int8_file, device="cpu", warmup=False)
    assert seg.backend == "onnxruntime" and seg.precision == "int8"
    res = seg.segment(render_scene(7, 75, 131).image)
    assert res.labels.shape == res.edges.shape == (75, 131)
    assert res.labels.max() < 19 and 0.0 <= res.edges.min() and res.edges.max() <= 1.0
    with pytest.raises(ValueError, match="holds a int8 model"):
        Segmenter.from_checkpoint(int8_file, device="cpu", precision="fp32", warmup=False)


def test_argmax_after_cast_is_exact():
    """ArgMax of dequantised uint8 and of the cast uint8 agree everywhere, ties included."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 6, (500, 19)).astype(np.uint8)  # few levels: many ties
    nodes = [helper.make_node("DequantizeLinear", ["x", "s", "z"], ["f"]),
             helper.make_node("ArgMax", ["f"], ["y"], axis=-1, keepdims=0)]
    inits = [numpy_helper.from_array(np.array(0.37, np.float32), "s"),
             numpy_helper.from_array(np.array(3, np.uint8), "z")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.UINT8, [500, 19])],
                              [helper.make_tensor_value_info("y", TensorProto.INT64, [500])], inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    proto.ir_version = 9
    before = ort.InferenceSession(proto.SerializeToString(), providers=CPU).run(None, {"x": x})
    assert argmax_after_cast(proto) == 1
    assert [n.op_type for n in proto.graph.node] == ["Cast", "ArgMax"]
    after = ort.InferenceSession(proto.SerializeToString(), providers=CPU).run(None, {"x": x})
    assert np.array_equal(before[0], after[0]) and np.array_equal(after[0], x.argmax(1))


def test_float_parts_select_their_nodes(int8_file):
    proto = onnx.load_model(str(int8_file))
    ops = {n.name: n.op_type for n in proto.graph.node}
    flow = float_node_names(proto, ["flow"])
    assert sorted(ops[n] for n in flow if ops[n] in ("GridSample", "Gemm")) == ["GridSample", "GridSample"]
    # flow_make and the gate of both modules; their input reductions (down_h, down_l) stay int8
    assert [ops[n] for n in flow].count("Conv") == 4
    assert [ops[n] for n in float_node_names(proto, ["classifier"])] == ["Gemm"]
    spatial = float_node_names(proto, ["spatial"])
    assert [ops[n] for n in spatial].count("Conv") == 4 and not set(spatial) & set(flow)
    after = [ops[n] for n in float_node_names(proto, ["logits"])]
    assert "ArgMax" in after and "Sigmoid" in after and "Gemm" not in after
    with pytest.raises(ValueError, match="choose from flow, logits, classifier"):
        float_node_names(proto, ["head"])


def test_the_spatial_path_stays_float_when_asked(untrained_weights, tmp_path):
    from bialign_ros.backends.torch_runner import load_inference_model

    model, meta = load_inference_model(untrained_weights)
    frames = [render_scene(730 + i, H, W).image for i in range(2)]
    report = quantize_model(model, meta, tmp_path / "spatial.int8.onnx", frames[:1], held_out=frames[1:],
                            dynamic=False, float_parts=(*DEFAULT_FLOAT_PARTS, "spatial"))
    types = {t.name: t.data_type for t in onnx.load_model(str(report.out)).graph.initializer}
    spatial = [name for name in types if name.startswith("sp.") and name.endswith("weight")]
    assert len(spatial) == 4 and all(types[name] == TensorProto.FLOAT for name in spatial)
    assert not any(name.startswith("sp.") and name.endswith("_quantized") for name in types)
    assert types["backbone.stage3_1.0.conv1.weight_quantized"] == TensorProto.INT8
    assert "float parts: flow, logits, spatial" in report.summary() and report.agreement is not None


def test_calibration_methods_are_checked(untrained_weights):
    from onnxruntime.quantization import CalibrationMethod

    from bialign_ros.backends.torch_runner import load_inference_model

    assert all(hasattr(CalibrationMethod, name) for name in CALIBRATION_METHODS.values())
    model, meta = load_inference_model(untrained_weights)
    with pytest.raises(ValueError, match="percentile, minmax"):
        quantize_model(model, meta, "unused.onnx", [render_scene(1, H, W).image], method="entropy")


def test_calibration_images_are_found_and_read(calib_dir, tmp_path):
    paths = find_images(calib_dir)
    assert len(paths) == 4 and paths == sorted(paths)
    frames = read_frames(paths[:1], 32, 48)
    assert frames[0].shape == (32, 48, 3) and frames[0].dtype == np.uint8
    with pytest.raises(ValueError, match="no images"):
        find_images(tmp_path)
    (tmp_path / "bad.png").write_bytes(b"nope")
    with pytest.raises(ValueError, match="cannot read image"):
        read_frames([tmp_path / "bad.png"], 32, 48)


def test_cli_errors(untrained_weights, calib_dir, tmp_path):
    proc = _quantize(untrained_weights, tmp_path / "nowhere", tmp_path / "x.onnx")
    assert proc.returncode == 2 and "image folder not found" in proc.stderr
    proc = _quantize(untrained_weights, calib_dir, tmp_path / "x.onnx", "--held-out", 4)
    assert proc.returncode == 2 and "need more than --held-out 4" in proc.stderr
    proc = _quantize(tmp_path / "none.pt", calib_dir, tmp_path / "x.onnx")
    assert proc.returncode == 2 and "not found" in proc.stderr


def test_a_tensor_percentile_cannot_bin_takes_its_minmax_range(untrained_weights, tmp_path):
    """A checkpoint whose spatial-path output is a constant 1e-43 (non-zero, but 2048 float32 bins
    of +-1e-43 cannot be told apart): percentile calibration used to end with numpy's "Too many
    bins for data range"; now that tensor takes its min/max range, and the file still agrees."""
    import torch

    from bialign_ros.backends.torch_runner import load_inference_model

    model, meta = load_inference_model(untrained_weights)
    with torch.no_grad():
        bn = model.sp.conv_out.bn
        bn.weight.zero_()
        bn.bias.fill_(1e-43)
    frames = [render_scene(700 + i, H, W).image for i in range(3)]
    # Fixed-size files (a third of a symbolic-size export's time): the fallback is size-independent.
    report = quantize_model(model, meta, tmp_path / "tiny.int8.onnx", frames[:2], held_out=frames[2:],
                            dynamic=False, method="percentile")
    # The constant and the few tensors it alone feeds (about 8: the next convolutions, the spatial
    # head's flow warp) are near zero on every frame.
    assert 0 < len(report.minmax_tensors) < 20
    assert f"{len(report.minmax_tensors)} tensor(s) too narrow for percentile bins took their min/max range" \
        in report.summary()
    notes = read_onnx_metadata(tmp_path / "tiny.int8.onnx")[1].notes
    assert notes["minmax_tensors"] == list(report.minmax_tensors)
    # The same model with min/max ranges everywhere (which never bins) agrees about as well: these
    # untrained weights hesitate on most pixels (90-92 % with 8-bit weights, either way), where a
    # broken file would agree on about one pixel in 19.
    minmax = quantize_model(model, meta, tmp_path / "minmax.int8.onnx", frames[:2], held_out=frames[2:],
                            dynamic=False, method="minmax")
    assert not minmax.minmax_tensors
    assert report.agreement >= minmax.agreement - 0.02, (report.agreement, minmax.agreement)


def test_int8_outputs_at_reduced_scale_are_the_resized_logits(int8_file):
    from test_upsample import check_reduced_scale

    seg = Segmenter.from_checkpoint(int8_file, device="cpu", input_scale=0.5, warmup=False)
    check_reduced_scale(seg, render_scene(31, 2 * H, 2 * W).image)
