"""The parameters of the ``bialign`` node: names, defaults, descriptions, ranges and validation.

Pure Python: the node turns each :class:`ParamSpec` into a ROS parameter descriptor, and
:func:`validate_params` checks a full set of values at start-up, so a bad value fails with a
message naming the parameter and the allowed values before any model is loaded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from bialign_ros.classes import DEFAULT_FREE_SPACE_CLASSES, DEFAULT_OBSTACLE_CLASSES
from bialign_ros.segmenter import PRECISIONS

ParamValue = bool | int | float | str | tuple[str, ...]

CAMERA_NAME_PATTERN = r"[A-Za-z_][A-Za-z0-9_]*"
"""A camera name is one ROS name token: it becomes the namespace of that camera's topics."""


class ParamError(ValueError):
    """A node parameter has a value outside its allowed set or range."""


@dataclass(frozen=True)
class ParamSpec:
    """One declared parameter of the node."""

    name: str
    default: ParamValue
    description: str
    choices: tuple[str, ...] = ()
    """Allowed string values, as shown to users (``cuda:N`` stands for any device index)."""
    pattern: str | None = None
    """Regular expression a string value (or each item of a list) must match fully."""
    min_value: float | None = None
    max_value: float | None = None
    read_only: bool = True
    """True for start-up values; False for values that may change while the node runs."""
    required: bool = False
    """True for a string that must not be empty."""
    items: str = ("distinct names, each a letter or underscore followed by letters, digits and underscores, "
                  "e.g. [front, left]")
    """What each item of a list parameter must be, as shown to users."""
    item_rule: str = "a ROS name token"
    """What an item that does not match ``pattern`` fails to be."""

    @property
    def allowed(self) -> str:
        """Human-readable description of the allowed values."""
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if isinstance(self.default, bool):
            return "true or false"
        if isinstance(self.default, tuple):
            return f"a list of {self.items}"
        kind = "an integer" if isinstance(self.default, int) else "a number"
        if self.min_value is not None and self.max_value is not None:
            return f"{kind} in [{_fmt(self.min_value)}, {_fmt(self.max_value)}]"
        if isinstance(self.default, str):
            return "a string"
        return kind

    def error(self, value: Any, problem: str = "") -> ParamError:
        """The :class:`ParamError` for a bad ``value`` of this parameter."""
        detail = f" ({problem})" if problem else ""
        return ParamError(f"parameter '{self.name}': got {value!r}{detail}; allowed: {self.allowed}")

    def validate(self, value: Any) -> ParamValue:
        """Return ``value`` checked (an int is accepted for a float parameter); else raise ParamError."""
        if isinstance(self.default, tuple):
            return self._validate_names(value)
        if isinstance(self.default, bool):
            if not isinstance(value, bool):
                raise self.error(value)
            return value
        if isinstance(self.default, int):
            if isinstance(value, bool) or not isinstance(value, int):
                raise self.error(value)
        elif isinstance(self.default, float):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise self.error(value)
            value = float(value)
        elif not isinstance(value, str):
            raise self.error(value)
        elif self.required and not value:
            raise ParamError(f"parameter '{self.name}' is required: {self.description}")
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            raise self.error(value)
        if self.choices and self.pattern is None and value not in self.choices:
            raise self.error(value)
        if self.min_value is not None and value < self.min_value:
            raise self.error(value)
        if self.max_value is not None and value > self.max_value:
            raise self.error(value)
        return value

    def _validate_names(self, value: Any) -> tuple[str, ...]:
        if value is None:  # how ROS hands over an empty list from a params file or the command line
            return ()
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise self.error(value)
        for name in value:
            if self.pattern is not None and not re.fullmatch(self.pattern, name):
                raise self.error(value, f"{name!r} is not {self.item_rule}")
        duplicates = sorted({name for name in value if value.count(name) > 1})
        if duplicates:
            raise self.error(value, "duplicate " + ", ".join(map(repr, duplicates)))
        return tuple(value)


def _fmt(x: float) -> str:
    return f"{x:g}"


DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N")
BACKEND_CHOICES = ("auto", "torch", "onnxruntime", "tensorrt")
RELIABILITY_CHOICES = ("auto", "reliable", "best_effort")
TRANSPORT_CHOICES = ("raw", "compressed")
DEFAULT_TRANSPORT = "raw"
TRANSPORT_ALIAS = "input_transport"
"""The older name of ``image_transport``, still accepted (see :func:`validate_params`)."""

PARAM_SPECS: tuple[ParamSpec, ...] = (
    ParamSpec(
        "weights", "",
        "Path of the bialign_ros checkpoint (.pt) to run; required. Convert the authors' files "
        "with bialign_convert.",
        required=True,
    ),
    ParamSpec("device", "auto", "Inference device: auto picks cuda when available, else cpu.",
              choices=DEVICE_CHOICES, pattern=r"auto|cpu|cuda(:\d+)?"),
    ParamSpec("precision", "auto", "Compute precision: auto is fp16 on CUDA, bf16 on CPUs with AMX "
              "and fp32 on other CPUs for .pt files, and the file's own precision for exported ones; "
              "int8 asks for an int8 file (bialign_quantize).", choices=PRECISIONS),
    ParamSpec("backend", "auto",
              "Inference backend: auto follows the weights file (.pt torch, .onnx onnxruntime, "
              ".engine/.plan tensorrt).", choices=BACKEND_CHOICES),
    ParamSpec("compile", False,
              "torch backend: run the graph through torch.compile (inductor, frozen weights), the fastest "
              "CPU path (bf16 on a 2-core Xeon: 0.65-0.9x the eager frame time). The first frame of each "
              "image size compiles, and the first one after the confidence map starts or stops being needed "
              "(up to 30 s there, less once inductor has cached it; frames arriving meanwhile are dropped as "
              "usual); needs a C++ compiler. Other backends refuse it."),
    ParamSpec("input_scale", 1.0,
              "Scale of the network input relative to the camera image (e.g. 0.5 on a CPU); "
              "every output stays at the camera's resolution.",
              min_value=0.05, max_value=4.0),
    ParamSpec("image_transport", "",
              "raw subscribes 'image' (sensor_msgs/Image); compressed subscribes 'image/compressed' "
              "(sensor_msgs/CompressedImage, jpeg or png). Empty: input_transport's value, else raw.",
              choices=TRANSPORT_CHOICES, pattern="(raw|compressed)?"),
    ParamSpec(TRANSPORT_ALIAS, "",
              "The older name of image_transport, same values; setting either one selects the "
              "transport, setting both to different values is an error.",
              choices=TRANSPORT_CHOICES, pattern="(raw|compressed)?"),
    ParamSpec("cameras", (),
              "Cameras served by this node, one namespace each (e.g. [front, left]): camera C is read "
              "from C/image (C/image/compressed) and C/camera_info and written to C/segmentation/*, "
              "each output with its own frame's header; frames of several cameras that arrive together "
              "run in one batch. Empty: one camera on image and camera_info.",
              pattern=CAMERA_NAME_PATTERN),
    ParamSpec("qos_reliability", "auto",
              "Reliability of the image subscription. auto matches the publishers on the topic "
              "(reliable when all of them are reliable, else best_effort) and follows them as "
              "they come and go; the standard qos_overrides.<topic>.subscription.reliability "
              "parameter, when given, takes precedence.",
              choices=RELIABILITY_CHOICES),
    ParamSpec("qos_depth", 5,
              "History depth of the image subscription and of the output publishers (5, as in the "
              "sensor-data profile). The callback drains it at once and the newest frame wins, so "
              "depth adds no latency; it only keeps DDS from overwriting frames the executor has "
              "not taken yet. Raise it with drop_frames false when replaying bags.",
              min_value=1, max_value=100),
    ParamSpec("drop_frames", True,
              "true: latest frame wins (a frame arriving while one is in inference replaces the "
              "waiting one of its camera; drops are counted). false: evaluation mode, every frame is "
              "processed, each camera's in order."),
    ParamSpec("batch_window", 0.01,
              "Seconds the oldest waiting frame may wait for the other cameras' frames, so that they run "
              "in one forward pass; never longer, and no wait once every camera has a frame waiting "
              "(hardware-synchronised cameras arrive within milliseconds). No effect with one camera.",
              min_value=0.0, max_value=1.0),
    ParamSpec("inference_streams", 1,
              "Frames in inference at once, each on its share of the CPU cores (the model's intra-op threads: "
              "physical cores / streams). 1 gives each frame every core: the lowest latency. With the camera "
              "faster than the model, 2 on a CPU trades latency for frame rate: the model's threads no longer "
              "wait for each other when the node's other threads take a core from one of them. Frames still "
              "come out in stamp order. compile takes 1.",
              min_value=1, max_value=8),
    ParamSpec("publish_edges", True, "Publish segmentation/edges (computed only while subscribed).",
              read_only=False),
    ParamSpec("publish_color", True, "Publish segmentation/color (computed only while subscribed).",
              read_only=False),
    ParamSpec("publish_overlay", True, "Publish segmentation/overlay (computed only while subscribed).",
              read_only=False),
    ParamSpec("overlay_alpha", 0.5, "Weight of the class colours in segmentation/overlay (0 = image only).",
              min_value=0.0, max_value=1.0, read_only=False),
    ParamSpec("publish_confidence", True,
              "Publish segmentation/confidence: round(255 x the softmax probability of each pixel's label) "
              "(computed only while subscribed).", read_only=False),
    ParamSpec("publish_free_space", True,
              "Publish segmentation/free_space: 255 where the label is one of free_space_classes with "
              "confidence at least free_space_min_confidence, else 0 (computed only while subscribed).",
              read_only=False),
    ParamSpec("free_space_classes", DEFAULT_FREE_SPACE_CLASSES,
              "Class names (from the model's class_names) whose pixels are free space, e.g. [road]; "
              "a name the model does not have stops the node at configure. The default [road] means road "
              "if the model has it, else no free space (with a warning).",
              pattern=r"\S(.*\S)?", items="distinct class names of the model, e.g. [road, parking]",
              item_rule="a class name (no leading or trailing spaces)"),
    ParamSpec("free_space_min_confidence", 0.5,
              "Confidence a pixel of a free-space class needs to count as free space.",
              min_value=0.0, max_value=1.0, read_only=False),
    ParamSpec("publish_grid", True,
              "Publish segmentation/grid (nav_msgs/OccupancyGrid of the ground in grid_frame: 0 free space "
              "seen, 100 where an obstacle meets the ground, -1 unknown); needs camera_info. Computed only "
              "while subscribed.", read_only=False),
    ParamSpec("grid_frame", "base_link", "Frame of segmentation/grid; the camera_* pose parameters are in it.",
              pattern=r"[A-Za-z_/][A-Za-z0-9_/]*"),
    ParamSpec("grid_length", 40.0, "Extent of the grid along grid_frame's x (metres), from grid_origin_x.",
              min_value=0.5, max_value=500.0),
    ParamSpec("grid_width", 20.0, "Extent of the grid along grid_frame's y (metres), centred on y = 0.",
              min_value=0.5, max_value=500.0),
    ParamSpec("grid_resolution", 0.1, "Cell size of the grid (metres).", min_value=0.01, max_value=10.0),
    ParamSpec("grid_origin_x", 0.0, "x (metres, grid_frame) where the grid starts.",
              min_value=-500.0, max_value=500.0),
    ParamSpec("obstacle_classes", DEFAULT_OBSTACLE_CLASSES,
              "Class names whose lowest visible pixel in an image column marks an occupied grid cell "
              "(where the obstacle meets the ground); the ground behind it stays unknown. The default (these "
              "Cityscapes names) means every class of the model except the free-space classes and road, "
              "sidewalk, terrain, sky; other names the model does not have stop the node at configure.",
              pattern=r"\S(.*\S)?", items="distinct class names of the model, e.g. [car, person]",
              item_rule="a class name (no leading or trailing spaces)"),
    ParamSpec("camera_height", 1.5,
              "Height of the camera's optical centre above the ground (metres). A value <= 0 puts the "
              "camera on or below the ground: the grid is then not published and the node says why.",
              min_value=-100.0, max_value=100.0, read_only=False),
    ParamSpec("camera_pitch", 0.0, "Camera pitch (radians, REP 103: positive looks down).",
              min_value=-3.1416, max_value=3.1416, read_only=False),
    ParamSpec("camera_roll", 0.0, "Camera roll about its viewing direction (radians, REP 103: positive "
              "turns the image's right side down).", min_value=-3.1416, max_value=3.1416, read_only=False),
    ParamSpec("camera_x", 0.0, "Camera position along grid_frame's x (metres).",
              min_value=-100.0, max_value=100.0, read_only=False),
    ParamSpec("camera_y", 0.0, "Camera position along grid_frame's y (metres).",
              min_value=-100.0, max_value=100.0, read_only=False),
    ParamSpec("camera_yaw", 0.0, "Camera yaw in grid_frame (radians, positive turns left).",
              min_value=-3.1416, max_value=3.1416, read_only=False),
    ParamSpec("publish_points", True,
              "Publish segmentation/points (sensor_msgs/PointCloud2 in the camera's optical frame: x, y, z "
              "float32, label and confidence uint8) from the 'depth' input registered to the camera; "
              "computed only while subscribed and only for frames with a depth image.", read_only=False),
    ParamSpec("depth_tolerance", 0.02,
              "Largest stamp difference (seconds) between a frame and the depth image it is paired with.",
              min_value=0.0, max_value=1.0),
    ParamSpec("points_stride", 1, "Keep every n-th pixel in rows and columns of the depth image.",
              min_value=1, max_value=64, read_only=False),
    ParamSpec("no_frame_warning", 5.0,
              "Seconds without an input frame before the node says so (repeated with growing "
              "intervals); 0 disables the warning.",
              min_value=0.0, max_value=3600.0),
    ParamSpec("stats_log_period", 10.0,
              "Seconds between log lines with rates, latency and drops; 0 disables them "
              "(/diagnostics is published once a second regardless).",
              min_value=0.0, max_value=3600.0),
    ParamSpec("autostart", True,
              "Configure and activate the managed node at start-up; false leaves it unconfigured "
              "for a lifecycle manager."),
)

SPECS_BY_NAME: dict[str, ParamSpec] = {s.name: s for s in PARAM_SPECS}


@dataclass(frozen=True)
class NodeConfig:
    """The validated parameter values of one node configuration."""

    weights: str
    device: str
    precision: str
    backend: str
    compile: bool
    input_scale: float
    image_transport: str
    """The chosen input transport, raw or compressed (from image_transport or its alias)."""
    input_transport: str
    """The same chosen transport, under the older name."""
    cameras: tuple[str, ...]
    qos_reliability: str
    qos_depth: int
    drop_frames: bool
    batch_window: float
    inference_streams: int
    publish_edges: bool
    publish_color: bool
    publish_overlay: bool
    overlay_alpha: float
    publish_confidence: bool
    publish_free_space: bool
    free_space_classes: tuple[str, ...]
    free_space_min_confidence: float
    publish_grid: bool
    grid_frame: str
    grid_length: float
    grid_width: float
    grid_resolution: float
    grid_origin_x: float
    obstacle_classes: tuple[str, ...]
    camera_height: float
    camera_pitch: float
    camera_roll: float
    camera_x: float
    camera_y: float
    camera_yaw: float
    publish_points: bool
    depth_tolerance: float
    points_stride: int
    no_frame_warning: float
    stats_log_period: float
    autostart: bool


def defaults() -> dict[str, ParamValue]:
    """Every parameter's default value, by name."""
    return {s.name: s.default for s in PARAM_SPECS}


def validate_param(name: str, value: Any) -> ParamValue:
    """Check one parameter value; ParamError names the parameter and its allowed values."""
    spec = SPECS_BY_NAME.get(name)
    if spec is None:
        raise ParamError(f"unknown parameter '{name}'; known: {', '.join(SPECS_BY_NAME)}")
    return spec.validate(value)


def validate_params(values: dict[str, Any]) -> NodeConfig:
    """Build a :class:`NodeConfig` from ``values`` (missing names take their defaults).

    Every bad value is reported, one per line, in a single :class:`ParamError`. The transport
    is chosen by ``image_transport`` or its alias ``input_transport``, both empty by default:
    the one that is set wins, raw when neither is, and two different values are an error
    naming both; the config holds the chosen transport under both names. ``compile`` takes one
    inference stream (a compiled graph runs one frame at a time).
    """
    unknown = set(values) - set(SPECS_BY_NAME)
    if unknown:
        raise ParamError(f"unknown parameter(s) {sorted(unknown)}; known: {', '.join(SPECS_BY_NAME)}")
    checked, errors = {}, []
    for name, value in (defaults() | values).items():
        try:
            checked[name] = validate_param(name, value)
        except ParamError as exc:
            errors.append(str(exc))
    transport, alias = checked.get("image_transport"), checked.get(TRANSPORT_ALIAS)
    if transport and alias and transport != alias:
        errors.append(f"parameters 'image_transport' ({transport!r}) and '{TRANSPORT_ALIAS}' ({alias!r}) "
                      f"disagree: {TRANSPORT_ALIAS} is the older name of image_transport, set only one")
    if checked.get("compile") and checked.get("inference_streams", 1) > 1:
        errors.append(f"parameter 'inference_streams': compile takes 1 (a compiled graph runs one frame at a "
                      f"time), got {checked['inference_streams']}")
    if errors:
        raise ParamError("\n".join(errors))
    checked["image_transport"] = checked[TRANSPORT_ALIAS] = transport or alias or DEFAULT_TRANSPORT
    return NodeConfig(**checked)


def color_to_hex(rgb: tuple[int, int, int]) -> str:
    """An RGB colour as ``#rrggbb``, the form of the ``class_colors`` parameter."""
    return "#{:02x}{:02x}{:02x}".format(*rgb)
