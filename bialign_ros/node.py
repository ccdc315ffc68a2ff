"""The ``bialign`` ROS 2 node: camera images in, semantic labels and edge maps out, at camera rate.

A managed (lifecycle) node that runs by itself (``autostart``): configure validates the
parameters and loads the model, activate subscribes, deactivate unsubscribes, cleanup frees the
model. It serves one camera (``image``), or several (parameter ``cameras``: ``front/image``,
``left/image``, ...) with one model. Camera and depth images are taken raw (their CDR bytes, read
by :mod:`bialign_ros.codec.cdr_reader` only for the frames that are used). The subscription
callbacks only hand frames to a :class:`BatchPipeline` with one slot per camera; decoding and
inference (one forward pass per batch of same-size frames) run on its worker thread, rendering and
publishing the outputs on its second thread, which overlaps the next frame's inference. Every output
carries its input's header and resolution. Run it with ``bialign_node`` or ``python -m bialign_ros.node``.
"""

from __future__ import annotations

import posixpath
import sys
import time
import traceback
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import rclpy
from nav_msgs.msg import OccupancyGrid
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.parameter import Parameter
from rclpy.qos import QoSPolicyKind
from rclpy.qos_overriding_options import QoSOverridingOptions
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_msgs.msg import Header

from bialign_ros.backends.base import stream_threads
from bialign_ros.batch_pipeline import BatchPipeline, Outcome, Pending, Step, group_by
from bialign_ros.camera_geometry import CameraPose
from bialign_ros.checkpoint import CheckpointError
from bialign_ros.classes import free_space_classes_for, no_free_space_note, obstacle_classes_for
from bialign_ros.codec import CodecError, image_to_array, message_to_rgb8
from bialign_ros.codec.cdr import serialize_image
from bialign_ros.codec.cdr_reader import CdrHeader, deserialize_compressed_image, deserialize_image, header_stamp_ns
from bialign_ros.ground_grid import GridSpec
from bialign_ros.ground_outputs import GROUND_OUTPUTS, GroundOutputs, segmenter_work
from bialign_ros.node_diagnostics import DiagnosticsMixin
from bialign_ros.node_ground import occupancy_grid_msg, point_cloud_cdr
from bialign_ros.node_interface import (
    CAMERA_INFO,
    DEPTH_TOPIC,
    INPUT_TOPIC,
    NODE_NAME,
    OUTPUT_TOPICS,
    camera_topic,
    compressed_topic,
)
from bialign_ros.node_params import (
    PARAM_SPECS,
    SPECS_BY_NAME,
    NodeConfig,
    ParamError,
    ParamSpec,
    color_to_hex,
    validate_param,
    validate_params,
)
from bialign_ros.outputs import (
    IMAGE_OUTPUTS,
    OPTIONAL_OUTPUTS,
    OutputSettings,
    images_of,
    render_outputs,
)
from bialign_ros.qos import (
    RELIABILITY_POLICIES,
    camera_info_qos,
    describe_qos,
    image_qos,
    latched_qos,
    match_reliability,
    output_qos,
    policy_name,
)
from bialign_ros.rate_stats import StreamStats
from bialign_ros.raw_publish import publish_serialized
from bialign_ros.ros_logging import forward_package_logs
from bialign_ros.segmenter import SegmentationResult, Segmenter, backend_for_file
from bialign_ros.stamp_buffer import RecentByStamp
from bialign_ros.transport import prepare_for_large_frames

try:  # vision_msgs ships with ROS distros but not on PyPI
    from vision_msgs.msg import LabelInfo, VisionClass
except ImportError:
    LabelInfo = VisionClass = None

UNLABELED_NAME = "unlabeled"
ERROR_LOG_THROTTLE_S = 2.0


class _Interrupted(Exception):
    """Shutdown was requested during a transition."""


@dataclass
class _Frame:
    cdr: bytes
    """The camera message's CDR bytes (an Image or a CompressedImage, as ``input_transport`` says)."""
    received: float
    """time.monotonic() when the callback got it."""


def ros_header(header: CdrHeader) -> Header:
    """The ``std_msgs/Header`` message of a header read from CDR."""
    msg = Header(frame_id=header.frame_id)
    msg.stamp.sec, msg.stamp.nanosec = header.stamp.sec, header.stamp.nanosec
    return msg


@dataclass
class _Camera:
    """One served camera: its topics, subscriptions, publishers and statistics."""

    name: str
    """The camera's namespace in ``cameras``; empty for the node's single camera."""
    input_topic: str
    camera_info_topic: str
    fixed_reliability: str | None
    """Reliability from qos_reliability or the standard override; None: match the publishers."""
    logger: Any
    stats: StreamStats = field(default_factory=StreamStats)
    pubs: dict[str, Any] = field(default_factory=dict)
    image_sub: Any = None
    camera_info_sub: Any = None
    sub_reliability: str = ""
    subscription_qos: str = ""
    camera_info: CameraInfo | None = None
    depth_topic: str = ""
    depth_sub: Any = None
    depths: RecentByStamp[bytes] | None = None
    """The CDR bytes of the last depth images, for pairing with frames by stamp."""
    ground: GroundOutputs | None = None
    missing_camera_info_said: bool = False

    @property
    def source(self) -> str:
        """The input topic, with the camera's name when the node serves several."""
        return f"{self.input_topic} (camera {self.name})" if self.name else self.input_topic


def _descriptor(spec: ParamSpec) -> ParameterDescriptor:
    desc = ParameterDescriptor(description=spec.description, read_only=spec.read_only,
                               additional_constraints=f"allowed: {spec.allowed}")
    if spec.min_value is not None and spec.max_value is not None:
        if isinstance(spec.default, int):
            desc.integer_range = [IntegerRange(from_value=int(spec.min_value), to_value=int(spec.max_value),
                                               step=1)]
        else:
            desc.floating_point_range = [FloatingPointRange(from_value=float(spec.min_value),
                                                            to_value=float(spec.max_value), step=0.0)]
    return desc


def label_info_entries(class_names: tuple[str, ...], ignore_index: int) -> list[tuple[int, str]]:
    """``(class_id, class_name)`` pairs of ``segmentation/label_info``: the classes, then unlabeled."""
    return [*enumerate(class_names), (ignore_index, UNLABELED_NAME)]


class BiAlignNode(DiagnosticsMixin, LifecycleNode):
    """Semantic segmentation of one or several camera topics with a BiAlignNet checkpoint."""

    def __init__(self, **kwargs: Any) -> None:
        """Declare and check every parameter; raises :class:`ParamError` on a bad value."""
        super().__init__(NODE_NAME, **kwargs)
        # Read each value untyped first, so a wrong type or range gets our message naming the
        # allowed values (and 1 is accepted for 1.0); then declare it typed, with its ranges.
        given = {}
        for spec in PARAM_SPECS:
            given[spec.name] = self.declare_parameter(spec.name, spec.default,
                                                      ParameterDescriptor(dynamic_typing=True)).value
            self.undeclare_parameter(spec.name)
        self.config: NodeConfig = validate_params(given)
        for spec in PARAM_SPECS:
            # An empty cameras list is declared as rclpy infers it (an empty byte array, rclpy#912).
            value = getattr(self.config, spec.name)
            self.declare_parameter(spec.name, list(value) if isinstance(value, tuple) else value,
                                   _descriptor(spec), ignore_override=True)
        self._live = {spec.name: getattr(self.config, spec.name) for spec in PARAM_SPECS if not spec.read_only}
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self.cameras = [self._camera(name) for name in self.config.cameras or ("",)]
        self._by_name = {cam.name: cam for cam in self.cameras}
        self.input_topic = ", ".join(cam.input_topic for cam in self.cameras)

        self.segmenter: Segmenter | None = None
        self._variants_seen: set[tuple[int, int, int, bool]] = set()
        """(batch, height, width, confidence) the model has run with: with ``compile``, each new one compiles."""
        self._free_space_classes: tuple[str, ...] = ()
        """free_space_classes as they apply to the loaded model (set at configure)."""
        self._pipeline: BatchPipeline[_Frame] | None = None
        self._state = "unconfigured"
        self._start_diagnostics()

    def _camera(self, name: str) -> _Camera:
        image = self.resolve_topic_name(camera_topic(name, INPUT_TOPIC))
        compressed = self.config.input_transport == "compressed"
        topic = compressed_topic(image) if compressed else image
        # A logger per camera: throttled errors of one camera must not hide those of another.
        return _Camera(name=name, input_topic=topic,
                       depth_topic=self.resolve_topic_name(camera_topic(name, DEPTH_TOPIC)),
                       camera_info_topic=posixpath.join(posixpath.dirname(image), CAMERA_INFO),
                       fixed_reliability=self._declare_reliability_override(topic),
                       logger=self.get_logger().get_child(name) if name else self.get_logger())

    # ---------------------------------------------------------------- parameters
    def _declare_reliability_override(self, topic: str) -> str | None:
        """rclpy's standard reliability override of an image subscription, when the user gave one."""
        name = f"qos_overrides.{topic}.subscription.reliability"
        desc = ParameterDescriptor(
            description=f"Reliability of the subscription {topic}; overrides "
                        f"qos_reliability when set (empty: use qos_reliability).",
            read_only=True, additional_constraints="allowed: empty, reliable, best_effort")
        value = self.declare_parameter(name, "", desc).value
        if value and value not in RELIABILITY_POLICIES:
            raise ParamError(f"parameter '{name}': got {value!r}; allowed: reliable, best_effort")
        if value:
            return value
        return None if self.config.qos_reliability == "auto" else self.config.qos_reliability

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        for p in params:
            if p.name not in SPECS_BY_NAME:
                continue
            try:
                validate_param(p.name, p.value)
            except ParamError as exc:
                return SetParametersResult(successful=False, reason=str(exc))
        for p in params:
            if p.name in self._live:
                self._live[p.name] = validate_param(p.name, p.value)
        return SetParametersResult(successful=True)

    def _declare_class_table(self, segmenter: Segmenter) -> None:
        meta = segmenter.meta
        values = {"class_names": list(meta.class_names),
                  "class_colors": [color_to_hex(c) for c in meta.class_colors]}
        descriptions = {
            "class_names": "Class name of each train ID (index = label value); read-only, from the checkpoint.",
            "class_colors": "Colour (#rrggbb) of each train ID in segmentation/color; read-only, "
                            "from the checkpoint.",
        }
        for name, value in values.items():
            if not self.has_parameter(name):
                self.declare_parameter(name, value, ParameterDescriptor(
                    description=descriptions[name], read_only=True), ignore_override=True)

    def _choose_ground_classes(self, class_names: tuple[str, ...]) -> tuple[str, ...]:
        """Set the free-space classes and return the obstacle classes of the model (defaults: those fitting
        its class table, see classes.py); ParamError naming the parameter of a given class it lacks."""
        cfg = self.config
        try:
            self._free_space_classes = free_space_classes_for(class_names, cfg.free_space_classes)
        except ValueError as exc:
            raise ParamError(f"parameter 'free_space_classes': {exc}") from None
        try:
            obstacles = obstacle_classes_for(class_names, self._free_space_classes, cfg.obstacle_classes)
        except ValueError as exc:
            raise ParamError(f"parameter 'obstacle_classes': {exc}") from None
        note = no_free_space_note(cfg.free_space_classes, class_names)
        if note:
            self.get_logger().warning(f"parameter 'free_space_classes': {note}")
        self.get_logger().info(f"free space: {', '.join(self._free_space_classes) or 'none'}; "
                               f"obstacles: {', '.join(obstacles) or 'none'}")
        return obstacles

    # ---------------------------------------------------------------- lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Load the model and create the publishers."""
        try:
            self._configure()
        except _Interrupted:
            pass
        except CheckpointError as exc:
            self.get_logger().error(f"parameter 'weights': {exc}")
        except ParamError as exc:
            self.get_logger().error(str(exc))
        except ValueError as exc:
            self.get_logger().error(f"cannot load the model: {exc}")
        except Exception:  # rclpy turns a raising transition into ERROR without a word: say why
            self.get_logger().error(f"configure failed:\n{traceback.format_exc()}")
        else:
            self._state = "inactive"
            return super().on_configure(state)
        self.release()
        return TransitionCallbackReturn.FAILURE

    def _configure(self) -> None:
        cfg = self.config
        if cfg.compile and (backend := backend_for_file(cfg.weights, cfg.backend)) != "torch":
            raise ParamError(f"parameter 'compile': true applies to the torch backend (.pt files); "
                             f"{cfg.weights} runs on {backend}")
        self.segmenter = Segmenter.from_checkpoint(cfg.weights, device=cfg.device, precision=cfg.precision,
                                                   input_scale=cfg.input_scale, backend=cfg.backend,
                                                   compile=cfg.compile, threads=stream_threads(cfg.inference_streams))
        if not self.context.ok():  # Ctrl-C/SIGTERM while the model was loading
            raise _Interrupted
        obstacles = self._choose_ground_classes(self.segmenter.meta.class_names)
        grid = GridSpec(cfg.grid_length, cfg.grid_width, cfg.grid_resolution, cfg.grid_origin_x)
        for cam in self.cameras:
            cam.ground = GroundOutputs(grid, self.segmenter.meta.class_names, obstacles)
        self._declare_class_table(self.segmenter)
        overrides = QoSOverridingOptions.with_default_policies()
        qos = output_qos(cfg.qos_depth)
        for cam in self.cameras:
            for key in IMAGE_OUTPUTS:
                cam.pubs[key] = self.create_lifecycle_publisher(
                    Image, camera_topic(cam.name, OUTPUT_TOPICS[key]), qos, qos_overriding_options=overrides)
            cam.pubs["grid"] = self.create_lifecycle_publisher(
                OccupancyGrid, camera_topic(cam.name, OUTPUT_TOPICS["grid"]), qos, qos_overriding_options=overrides)
            cam.pubs["points"] = self.create_lifecycle_publisher(
                PointCloud2, camera_topic(cam.name, OUTPUT_TOPICS["points"]), qos, qos_overriding_options=overrides)
            cam.pubs["camera_info"] = self.create_lifecycle_publisher(
                CameraInfo, camera_topic(cam.name, OUTPUT_TOPICS["camera_info"]), qos,
                qos_overriding_options=overrides)
            if LabelInfo is not None:
                cam.pubs["label_info"] = self.create_lifecycle_publisher(
                    LabelInfo, camera_topic(cam.name, OUTPUT_TOPICS["label_info"]), latched_qos())
        seg = self.segmenter
        mode = "latest frame wins" if cfg.drop_frames else "evaluation mode: every frame is processed"
        if cfg.inference_streams > 1:
            mode += f"; {cfg.inference_streams} frames in inference at once"
        if cfg.cameras:
            inputs = "; ".join(f"camera {c.name}: input {c.input_topic}, camera_info {c.camera_info_topic}"
                               for c in self.cameras)
            inputs = (f"{len(self.cameras)} cameras ({cfg.input_transport}, frames arriving within "
                      f"{cfg.batch_window * 1e3:g} ms run in one batch): {inputs}")
        else:
            cam = self.cameras[0]
            inputs = f"input {cam.input_topic} ({cfg.input_transport}), camera_info {cam.camera_info_topic}"
        self.get_logger().info(
            f"model {seg.meta.arch} ({cfg.weights}) on {seg.device}, precision {seg.precision}, "
            f"backend {seg.backend}, input_scale {seg.input_scale:g}; {inputs}; {mode}")

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Start the inference worker and subscribe to the cameras."""
        result = super().on_activate(state)
        self._reset_stats()
        cfg = self.config
        self._pipeline = BatchPipeline(self._process_batch, [cam.name for cam in self.cameras],
                                       drop_frames=cfg.drop_frames, batch_window=cfg.batch_window,
                                       on_error=self._on_frame_error, workers=cfg.inference_streams).start()
        for cam in self.cameras:
            cam.camera_info_sub = self.create_subscription(
                CameraInfo, cam.camera_info_topic, partial(self._on_camera_info, cam), camera_info_qos())
            self._update_subscription(cam)
        self._publish_label_info()
        self._state = "active"
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Unsubscribe and stop the worker after the batch in progress."""
        self._stop_input()
        self._state = "inactive"
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Destroy the publishers and free the model (and its GPU memory)."""
        self.release()
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Release everything on the way out."""
        self.release()
        return super().on_shutdown(state)

    def _stop_input(self) -> None:
        for cam in self.cameras:
            for sub in (cam.image_sub, cam.camera_info_sub, cam.depth_sub):
                if sub is not None:
                    self.destroy_subscription(sub)
            cam.depth_sub = None
            cam.image_sub = cam.camera_info_sub = None
            cam.sub_reliability = ""
        if self._pipeline is not None:
            self._pipeline.stop()

    def release(self) -> None:
        """Stop input and free the publishers and the model; safe to call more than once."""
        self._stop_input()
        for cam in self.cameras:
            for pub in cam.pubs.values():
                self.destroy_lifecycle_publisher(pub)
            cam.pubs.clear()
        if self.segmenter is not None:
            self.segmenter.close()
            self.segmenter = None
        self._state = "unconfigured"

    # ---------------------------------------------------------------- input
    def _update_subscription(self, cam: _Camera) -> None:
        """(Re)subscribe ``cam`` when the reliability that matches its publishers has changed, and to its
        depth only while its points are wanted."""
        self._update_depth_subscription(cam)
        publishers = self.get_publishers_info_by_topic(cam.input_topic)
        reliability = cam.fixed_reliability or match_reliability(
            policy_name(info.qos_profile.reliability) for info in publishers)
        if cam.image_sub is not None and reliability == cam.sub_reliability:
            return
        if cam.image_sub is not None:
            self.destroy_subscription(cam.image_sub)
        msg_type = CompressedImage if self.config.input_transport == "compressed" else Image
        qos = image_qos(reliability, self.config.qos_depth)
        cam.image_sub = self.create_subscription(
            msg_type, cam.input_topic, partial(self._on_image, cam), qos,
            qos_overriding_options=QoSOverridingOptions([QoSPolicyKind.HISTORY, QoSPolicyKind.DEPTH]), raw=True)
        cam.sub_reliability = reliability
        cam.subscription_qos = describe_qos(qos)
        how = "fixed" if cam.fixed_reliability else "matching the publishers (qos_reliability auto)"
        self.get_logger().info(f"subscribed to {cam.input_topic} [{msg_type.__name__}] with QoS "
                               f"{cam.subscription_qos}, reliability {how}")

    def _update_depth_subscription(self, cam: _Camera) -> None:
        """Subscribe to ``cam``'s depth while its points are switched on and subscribed (depth images are
        the largest input: nobody should pay for receiving them otherwise); forget them when not."""
        wanted = self._live["publish_points"] and cam.pubs["points"].get_subscription_count() > 0
        if wanted and cam.depth_sub is None:
            cam.depths = RecentByStamp(round(self.config.depth_tolerance * 1e9))
            cam.depth_sub = self.create_subscription(Image, cam.depth_topic, partial(self._on_depth, cam),
                                                     image_qos("best_effort", self.config.qos_depth), raw=True)
        elif not wanted and cam.depth_sub is not None:
            self.destroy_subscription(cam.depth_sub)
            cam.depth_sub, cam.depths = None, None

    def _on_image(self, cam: _Camera, cdr: bytes) -> None:
        now = time.monotonic()
        self._stats.frame_in(now)
        cam.stats.frame_in(now)
        self._pipeline.submit(cam.name, _Frame(cdr, now))

    def _on_camera_info(self, cam: _Camera, msg: CameraInfo) -> None:
        cam.camera_info = msg

    def _on_depth(self, cam: _Camera, cdr: bytes) -> None:
        depths = cam.depths  # None once unsubscribed (a message may still be on its way)
        if depths is None:
            return
        try:
            depths.add(header_stamp_ns(cdr), cdr)
        except CodecError as exc:
            cam.logger.error(f"dropping a depth image from {cam.depth_topic}: {exc}",
                             throttle_duration_sec=ERROR_LOG_THROTTLE_S)

    # ---------------------------------------------------------------- inference and publishing (pipeline threads)
    def _read_input(self, cdr: bytes) -> Any:
        """The fields of a camera message from its CDR bytes (:class:`CodecError` when malformed)."""
        if self.config.input_transport == "compressed":
            return deserialize_compressed_image(cdr)
        return deserialize_image(cdr)

    def _process_batch(self, batch: list[Pending[_Frame]]) -> list[Outcome | Step]:
        """Decode every frame and run one forward pass per image size; return, per frame, its error
        or the step that publishes it on its camera's topics (run by the pipeline's second thread
        while this one takes on the next batch).

        A frame that fails fails alone: the other frames of the batch are processed as usual.
        """
        started = time.monotonic()
        outcomes: list[Outcome | Step] = [None] * len(batch)
        decoded: list[tuple[int, np.ndarray]] = []
        headers: dict[int, Header] = {}
        for i, item in enumerate(batch):
            try:
                msg = self._read_input(item.frame.cdr)
                decoded.append((i, message_to_rgb8(msg)))
                headers[i] = ros_header(msg.header)
            except Exception as exc:
                outcomes[i] = exc
        for group in group_by(decoded, key=lambda d: d[1].shape):
            cams = [self._by_name[batch[i].stream] for i, _ in group]
            wants = [self._wanted_outputs(cam) for cam in cams]
            work = segmenter_work(set().union(*wants))
            (h, w), variant = group[0][1].shape[:2], (len(group), *group[0][1].shape[:2], work["confidence"])
            compiling = self.config.compile and variant not in self._variants_seen
            if compiling:
                self.get_logger().info(
                    f"compiling the graph for {w}x{h} images (batch {len(group)}, confidence "
                    f"{'on' if work['confidence'] else 'off'}): this frame waits for it, newer ones are dropped "
                    f"meanwhile")
            self._variants_seen.add(variant)
            try:
                results = self.segmenter.segment_batch([image for _, image in group], **work)
            except Exception as exc:
                for i, _ in group:
                    outcomes[i] = exc
                continue
            if compiling:
                self.get_logger().info(f"compiled for {w}x{h} in {time.monotonic() - started:.1f} s")
            shared = len(group) > 1
            self._stats.forward_pass(len(group), shared)
            for cam in cams:
                cam.stats.forward_pass(1, shared)
            for (i, image), cam, want, result in zip(group, cams, wants, results):
                outcomes[i] = partial(self._publish, cam, batch[i].frame, headers[i], image, result, want)
        if decoded:  # a batch of bad frames only would make the period look shorter than it is
            self._stats.processing.add(time.monotonic() - started)
        return outcomes

    def _wanted_outputs(self, cam: _Camera) -> tuple[str, ...]:
        """The outputs of ``cam`` to compute: labels, and the optional ones switched on and subscribed."""
        return ("labels", *(key for key in (*OPTIONAL_OUTPUTS, *GROUND_OUTPUTS)
                            if self._live[f"publish_{key}"] and cam.pubs[key].get_subscription_count() > 0))

    def _publish(self, cam: _Camera, frame: _Frame, header: Header, image: np.ndarray,
                 result: SegmentationResult, want: tuple[str, ...]) -> None:
        """Render the outputs ``want`` of one frame and publish them (the pipeline's second stage)."""
        started = time.monotonic()
        settings = OutputSettings(self._live["overlay_alpha"], self._free_space_classes,
                                  self._live["free_space_min_confidence"])
        for output in render_outputs(self.segmenter, image, result, images_of(want), settings):
            self._stats.output_rendered(output.name)
            cam.stats.output_rendered(output.name)
            # serialised from the array with one copy, where an Image message would take three
            publish_serialized(cam.pubs[output.name], serialize_image(header, output.array, output.encoding))
        if "grid" in want:
            self._publish_grid(cam, header, result, settings)
        if "points" in want:
            self._publish_points(cam, header, result)
        info = cam.camera_info
        if info is not None:
            info.header = header
            cam.pubs["camera_info"].publish(info)
        latency = time.monotonic() - frame.received
        stamp_age = (self.get_clock().now().nanoseconds - Time.from_msg(header.stamp).nanoseconds) * 1e-9
        self._stats.frame_out(latency, stamp_age)
        cam.stats.frame_out(latency, stamp_age)
        self._stats.publishing.add(time.monotonic() - started)

    def _intrinsics_known(self, cam: _Camera, output: str) -> bool:
        """Whether ``cam`` has camera_info; says once, naming the topic, when it has not."""
        if cam.camera_info is None and not cam.missing_camera_info_said:
            cam.missing_camera_info_said = True
            cam.logger.warning(f"no camera_info on {cam.camera_info_topic} yet: {OUTPUT_TOPICS[output]} needs the "
                               f"camera's intrinsics and is published once camera_info arrives")
        return cam.camera_info is not None

    def _publish_grid(self, cam: _Camera, header: Any, result: SegmentationResult,
                      settings: OutputSettings) -> None:
        if not self._intrinsics_known(cam, "grid"):
            return
        live = self._live
        try:  # the pose parameters change at run time: a camera below the ground is a frame's error
            pose = CameraPose(live["camera_height"], live["camera_pitch"], live["camera_roll"], live["camera_x"],
                              live["camera_y"], live["camera_yaw"])
            grid = cam.ground.occupancy(cam.camera_info.k, pose, result, settings)
        except ValueError as exc:
            cam.logger.error(f"{OUTPUT_TOPICS['grid']} not published: {exc}",
                             throttle_duration_sec=ERROR_LOG_THROTTLE_S)
            return
        cam.pubs["grid"].publish(occupancy_grid_msg(grid, cam.ground.grid_spec, header.stamp,
                                                    self.config.grid_frame))

    def _publish_points(self, cam: _Camera, header: Any, result: SegmentationResult) -> None:
        depths = cam.depths  # the executor thread drops them when the points are no longer wanted
        if not depths or not self._intrinsics_known(cam, "points"):
            return  # without depth the points are simply not published
        stamp = Time.from_msg(header.stamp).nanoseconds
        depth = depths.nearest(stamp)
        try:
            if depth is None:
                raise ValueError(f"no depth image on {cam.depth_topic} within depth_tolerance "
                                 f"({self.config.depth_tolerance:g} s) of the frame stamped {stamp * 1e-9:.3f} s "
                                 f"(the last depth images are {depths.describe()})")
            depth_msg = deserialize_image(depth)
            cloud = cam.ground.points(cam.camera_info.k, image_to_array(depth_msg), depth_msg.encoding, result,
                                      self._live["points_stride"])
        except ValueError as exc:  # CodecError included
            cam.logger.error(f"{OUTPUT_TOPICS['points']} not published: {exc}",
                             throttle_duration_sec=ERROR_LOG_THROTTLE_S)
            return
        publish_serialized(cam.pubs["points"], point_cloud_cdr(cloud, header))

    def _on_frame_error(self, item: Pending[_Frame], exc: Exception) -> None:
        cam = self._by_name[item.stream]
        # ValueError covers CodecError (malformed message) and images the model cannot take.
        if isinstance(exc, ValueError):
            self._stats.reject()
            rejected = cam.stats.reject()
            cam.logger.error(f"dropping a bad frame from {cam.source}: {exc} ({rejected} rejected so far)",
                             throttle_duration_sec=ERROR_LOG_THROTTLE_S)
        else:
            cam.logger.error(f"inference failed on a frame from {cam.source}: {exc!r}",
                             throttle_duration_sec=ERROR_LOG_THROTTLE_S)

    def _publish_label_info(self) -> None:
        if LabelInfo is None:
            return
        msg = LabelInfo()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.threshold = 0.0  # labels are an argmax, not thresholded scores
        msg.class_map = [VisionClass(class_id=i, class_name=n)
                         for i, n in label_info_entries(self.segmenter.meta.class_names,
                                                        self.segmenter.meta.ignore_index)]
        for cam in self.cameras:
            cam.pubs["label_info"].publish(msg)


def main(argv: list[str] | None = None) -> int:
    """Run the node until Ctrl-C/SIGTERM; returns the process exit code."""
    profile = prepare_for_large_frames()
    rclpy.init(args=sys.argv if argv is None else argv)
    # Built before anything can log readiness: a Ctrl-C inside its constructor leaves a
    # half-built executor whose finaliser prints a traceback.
    executor = SingleThreadedExecutor()
    node = restore_logs = None
    try:
        node = BiAlignNode()
        restore_logs = forward_package_logs(node.get_logger())
        if profile is not None:
            node.get_logger().info(f"Fast DDS transport profile for large frames: {profile}")
        if node.config.autostart:
            if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                return 1 if node.context.ok() else 0  # not ok: interrupted while loading
            node.trigger_activate()
        executor.add_node(node)
        executor.spin()
    except ParamError as exc:
        rclpy.logging.get_logger(NODE_NAME).error(str(exc))
        return 1
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        if node is None or node.context.ok():
            raise
        # Ctrl-C: rclpy's signal handler shut the context down under a running callback.
    finally:
        if node is not None:
            node.release()
            node.destroy_node()
        if restore_logs is not None:
            restore_logs()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
