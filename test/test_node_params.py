"""Parameter specs and validation of the node, without ROS."""

from __future__ import annotations

import pytest

from bialign_ros.ground_outputs import GROUND_OUTPUTS
from bialign_ros.node_params import (
    PARAM_SPECS,
    SPECS_BY_NAME,
    NodeConfig,
    ParamError,
    color_to_hex,
    defaults,
    validate_param,
    validate_params,
)
from bialign_ros.outputs import OPTIONAL_OUTPUTS

ISSUE_PARAMETERS = {"weights", "device", "precision", "input_scale", "overlay_alpha", "qos_reliability", "qos_depth",
                    "publish_edges", "publish_color", "publish_overlay", "drop_frames", "autostart",
                    "image_transport", "input_transport"}


def test_every_issue_parameter_is_declared_with_a_description():
    assert ISSUE_PARAMETERS <= set(SPECS_BY_NAME)
    assert set(SPECS_BY_NAME) == set(NodeConfig.__dataclass_fields__)
    for spec in PARAM_SPECS:
        assert len(spec.description) > 20, spec.name
        assert spec.allowed


def test_defaults_are_valid_once_weights_are_given():
    cfg = validate_params({"weights": "model.pt"})
    assert cfg.device == "auto" and cfg.precision == "auto" and cfg.qos_reliability == "auto"
    assert cfg.drop_frames and cfg.autostart and cfg.qos_depth == 5
    chosen = {"weights", "image_transport", "input_transport"}  # given, or resolved from the defaults
    assert {k: getattr(cfg, k) for k in defaults() if k not in chosen} == {k: v for k, v in defaults().items()
                                                                           if k not in chosen}
    assert cfg.image_transport == cfg.input_transport == "raw"


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:0", "cuda:12"])
def test_device_accepts_auto_cpu_cuda_and_indexed_cuda(device):
    assert validate_param("device", device) == device


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("device", "gpu", "parameter 'device': got 'gpu'; allowed: one of auto, cpu, cuda, cuda:N"),
        ("device", "cuda:x", "allowed: one of auto, cpu, cuda, cuda:N"),
        ("precision", "fp8", "allowed: one of auto, fp32, fp16, bf16"),
        ("input_scale", 0.0, "parameter 'input_scale': got 0.0; allowed: a number in [0.05, 4]"),
        ("input_scale", 4.5, "a number in [0.05, 4]"),
        ("input_scale", "half", "a number in [0.05, 4]"),
        ("overlay_alpha", 1.5, "a number in [0, 1]"),
        ("qos_reliability", "sometimes", "one of auto, reliable, best_effort"),
        ("qos_depth", 0, "an integer in [1, 100]"),
        ("qos_depth", 2.0, "an integer in [1, 100]"),
        ("qos_depth", True, "an integer in [1, 100]"),
        ("publish_edges", "yes", "true or false"),
        ("input_transport", "theora", "one of raw, compressed"),
        ("image_transport", "theora", "one of raw, compressed"),
        ("no_frame_warning", -1.0, "a number in [0, 3600]"),
    ],
)
def test_bad_values_name_the_parameter_and_the_allowed_values(name, value, message):
    with pytest.raises(ParamError, match=f"parameter '{name}'") as info:
        validate_param(name, value)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("given", "chosen"),
    [({}, "raw"), ({"image_transport": "compressed"}, "compressed"), ({"input_transport": "compressed"}, "compressed"),
     ({"image_transport": "raw"}, "raw"), ({"input_transport": "raw"}, "raw"),
     ({"image_transport": "compressed", "input_transport": "compressed"}, "compressed"),
     ({"image_transport": "", "input_transport": "compressed"}, "compressed")],
)
def test_image_transport_or_its_alias_input_transport_chooses_the_transport(given, chosen):
    cfg = validate_params({"weights": "m.pt", **given})
    assert cfg.image_transport == cfg.input_transport == chosen


def test_compile_takes_one_inference_stream():
    assert validate_params({"weights": "m.pt", "inference_streams": 2}).inference_streams == 2
    assert validate_params({"weights": "m.pt", "compile": True}).inference_streams == 1
    with pytest.raises(ParamError, match=r"parameter 'inference_streams': compile takes 1 .*, got 2"):
        validate_params({"weights": "m.pt", "compile": True, "inference_streams": 2})
    with pytest.raises(ParamError, match=r"parameter 'inference_streams': got 0; allowed: an integer in \[1, 8\]"):
        validate_params({"weights": "m.pt", "inference_streams": 0})


@pytest.mark.parametrize(("image", "alias"), [("raw", "compressed"), ("compressed", "raw")])
def test_image_transport_and_input_transport_must_not_disagree(image, alias):
    with pytest.raises(ParamError) as info:
        validate_params({"weights": "m.pt", "image_transport": image, "input_transport": alias})
    assert "parameters 'image_transport'" in str(info.value) and "'input_transport'" in str(info.value)
    assert repr(image) in str(info.value) and repr(alias) in str(info.value)


def test_an_integer_is_accepted_for_a_float_parameter():
    assert validate_param("input_scale", 1) == 1.0
    assert isinstance(validate_param("input_scale", 1), float)


def test_weights_are_required():
    with pytest.raises(ParamError, match="parameter 'weights' is required"):
        validate_params({})


def test_all_bad_values_are_reported_together():
    with pytest.raises(ParamError) as info:
        validate_params({"weights": "m.pt", "device": "gpu", "qos_depth": 0, "overlay_alpha": 2.0})
    lines = str(info.value).splitlines()
    assert len(lines) == 3
    assert {line.split("'")[1] for line in lines} == {"device", "qos_depth", "overlay_alpha"}


def test_unknown_parameters_are_rejected_by_name():
    with pytest.raises(ParamError, match="unknown parameter.*'wieghts'"):
        validate_params({"wieghts": "m.pt"})
    with pytest.raises(ParamError, match="unknown parameter 'nope'"):
        validate_param("nope", 1)


def test_runtime_parameters_are_the_output_switches_drawing_settings_and_the_camera_pose():
    dynamic = {s.name for s in PARAM_SPECS if not s.read_only}
    pose = {f"camera_{k}" for k in ("height", "pitch", "roll", "x", "y", "yaw")}
    assert dynamic == {*(f"publish_{name}" for name in (*OPTIONAL_OUTPUTS, *GROUND_OUTPUTS)), "overlay_alpha",
                       "free_space_min_confidence", "points_stride", *pose}


def test_class_colors_are_hex_strings():
    assert color_to_hex((128, 64, 128)) == "#804080"
    assert color_to_hex((0, 0, 0)) == "#000000"
