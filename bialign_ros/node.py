"""The ``bialign`` ROS 2 node: camera images in, semantic labels and edge maps out, at camera rate.

A managed (lifecycle) node that runs by itself (``autostart``): configure validates the
parameters and loads the model, activate subscribes, deactivate unsubscribes, cleanup frees the
model. The subscription callback only hands frames to a :class:`FramePipeline`; decoding,
inference and publishing run on its worker thread. Every output carries the input's header and
the input's resolution. Run it with ``bialign_node`` or ``python -m bialign_ros.node``.
"""

from __future__ import annotations

import posixpath
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleState, TransitionCallbackReturn
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.parameter import Parameter
from rclpy.qos import QoSPolicyKind
from rclpy.qos_overriding_options import QoSOverridingOptions
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from bialign_ros.checkpoint import CheckpointError
from bialign_ros.codec import compressed_to_rgb8, fill_image, image_to_rgb8
from bialign_ros.frame_pipeline import FramePipeline
from bialign_ros.node_interface import (
    CAMERA_INFO,
    COMPRESSED_SUFFIX,
    DIAGNOSTICS_TOPIC,
    INPUT_TOPIC,
    NODE_NAME,
    OUTPUT_TOPICS,
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
from bialign_ros.node_report import NodeReport
from bialign_ros.qos import (
    RELIABILITY_POLICIES,
    camera_info_qos,
    describe_qos,
    image_qos,
    latched_qos,
    match_reliability,
    output_qos,
    policy_name,
    publisher_requirement,
)
from bialign_ros.rate_stats import LatencyStats, RateMeter
from bialign_ros.segmenter import Segmenter
from bialign_ros.transport import use_transport_profile

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
    msg: Image | CompressedImage
    received: float
    """time.monotonic() when the callback got it."""


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


class BiAlignNode(LifecycleNode):
    """Semantic segmentation of a camera topic with a BiAlignNet checkpoint."""

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
            self.declare_parameter(spec.name, getattr(self.config, spec.name), _descriptor(spec),
                                   ignore_override=True)
        self._live = {name: getattr(self.config, name)
                      for name in ("publish_edges", "publish_color", "publish_overlay", "overlay_alpha")}
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self.input_topic = self.resolve_topic_name(INPUT_TOPIC)
        if self.config.input_transport == "compressed":
            self.input_topic = posixpath.join(self.input_topic, COMPRESSED_SUFFIX)
        self._camera_info_topic = posixpath.join(posixpath.dirname(self.resolve_topic_name(INPUT_TOPIC)),
                                                 CAMERA_INFO)
        override = f"qos_overrides.{self.input_topic}.subscription.reliability"
        self._fixed_reliability = self._declare_reliability_override(override)

        self.segmenter: Segmenter | None = None
        self._pubs: dict[str, Any] = {}
        self._pipeline: FramePipeline[_Frame] | None = None
        self._image_sub = self._camera_info_sub = None
        self._sub_reliability = ""
        self._camera_info: CameraInfo | None = None
        self._state = "unconfigured"
        self._reset_stats()

        self._diag_pub = self.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, 10)
        self._diag_timer = self.create_timer(1.0, self._on_diagnostics_timer)
        self._last_log = time.monotonic()

    # ---------------------------------------------------------------- parameters
    def _declare_reliability_override(self, name: str) -> str | None:
        """rclpy's standard reliability override of the image subscription, when the user gave one."""
        desc = ParameterDescriptor(
            description=f"Reliability of the subscription {self.input_topic}; overrides "
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

    # ---------------------------------------------------------------- lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Load the model and create the publishers."""
        try:
            self._configure()
        except _Interrupted:
            pass
        except CheckpointError as exc:
            self.get_logger().error(f"parameter 'weights': {exc}")
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
        self.segmenter = Segmenter.from_checkpoint(cfg.weights, device=cfg.device, precision=cfg.precision,
                                                   input_scale=cfg.input_scale, backend=cfg.backend)
        if not self.context.ok():  # Ctrl-C/SIGTERM while the model was loading
            raise _Interrupted
        self._declare_class_table(self.segmenter)
        overrides = QoSOverridingOptions.with_default_policies()
        qos = output_qos(cfg.qos_depth)
        for key in ("labels", "edges", "color", "overlay"):
            self._pubs[key] = self.create_lifecycle_publisher(Image, OUTPUT_TOPICS[key], qos,
                                                              qos_overriding_options=overrides)
        self._pubs["camera_info"] = self.create_lifecycle_publisher(
            CameraInfo, OUTPUT_TOPICS["camera_info"], qos, qos_overriding_options=overrides)
        if LabelInfo is not None:
            self._pubs["label_info"] = self.create_lifecycle_publisher(
                LabelInfo, OUTPUT_TOPICS["label_info"], latched_qos())
        seg = self.segmenter
        self.get_logger().info(
            f"model {seg.meta.arch} ({cfg.weights}) on {seg.device}, precision {seg.precision}, "
            f"backend {seg.backend}, input_scale {seg.input_scale:g}; input {self.input_topic} "
            f"({cfg.input_transport}), camera_info {self._camera_info_topic}; "
            f"{'latest frame wins' if cfg.drop_frames else 'evaluation mode: every frame is processed'}")

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Start the inference worker and subscribe to the camera."""
        result = super().on_activate(state)
        self._reset_stats()
        self._pipeline = FramePipeline(self._process, drop_frames=self.config.drop_frames,
                                       on_error=self._on_frame_error).start()
        self._camera_info_sub = self.create_subscription(CameraInfo, self._camera_info_topic,
                                                         self._on_camera_info, camera_info_qos())
        self._update_subscription()
        self._publish_label_info()
        self._state = "active"
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Unsubscribe and stop the worker after the frame in progress."""
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
        for sub in (self._image_sub, self._camera_info_sub):
            if sub is not None:
                self.destroy_subscription(sub)
        self._image_sub = self._camera_info_sub = None
        self._sub_reliability = ""
        if self._pipeline is not None:
            self._pipeline.stop()

    def release(self) -> None:
        """Stop input and free the publishers and the model; safe to call more than once."""
        self._stop_input()
        for pub in self._pubs.values():
            self.destroy_lifecycle_publisher(pub)
        self._pubs.clear()
        if self.segmenter is not None:
            self.segmenter.close()
            self.segmenter = None
        self._state = "unconfigured"

    # ---------------------------------------------------------------- input
    def _update_subscription(self) -> None:
        """(Re)subscribe when the reliability that matches the publishers has changed."""
        reliability = self._fixed_reliability or match_reliability(
            policy_name(info.qos_profile.reliability) for info in self.get_publishers_info_by_topic(self.input_topic))
        if self._image_sub is not None and reliability == self._sub_reliability:
            return
        if self._image_sub is not None:
            self.destroy_subscription(self._image_sub)
        msg_type = CompressedImage if self.config.input_transport == "compressed" else Image
        qos = image_qos(reliability, self.config.qos_depth)
        self._image_sub = self.create_subscription(
            msg_type, self.input_topic, self._on_image, qos,
            qos_overriding_options=QoSOverridingOptions([QoSPolicyKind.HISTORY, QoSPolicyKind.DEPTH]))
        self._sub_reliability = reliability
        self._subscription_qos = describe_qos(qos)
        how = "fixed" if self._fixed_reliability else "matching the publishers (qos_reliability auto)"
        self.get_logger().info(f"subscribed to {self.input_topic} [{msg_type.__name__}] with QoS "
                               f"{self._subscription_qos}, reliability {how}")

    def _on_image(self, msg: Image | CompressedImage) -> None:
        now = time.monotonic()
        self._input_rate.tick(now)
        self._last_input = now
        self._pipeline.submit(_Frame(msg, now))

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._camera_info = msg

    # ---------------------------------------------------------------- inference (worker thread)
    def _process(self, frame: _Frame) -> None:
        msg, seg, pubs, live = frame.msg, self.segmenter, self._pubs, self._live
        image = compressed_to_rgb8(msg) if isinstance(msg, CompressedImage) else image_to_rgb8(msg)
        want = {key: live[f"publish_{key}"] and pubs[key].get_subscription_count() > 0
                for key in ("edges", "color", "overlay")}
        result = seg.segment(image, edges=want["edges"])
        self._publish_image("labels", msg.header, result.labels, "mono8")
        if want["edges"]:
            self._publish_image("edges", msg.header, result.edges_u8(), "mono8")
        if want["color"]:
            self._publish_image("color", msg.header, seg.colorize(result.labels), "rgb8")
        if want["overlay"]:
            self._publish_image("overlay", msg.header, seg.overlay(image, result.labels, live["overlay_alpha"]),
                                "rgb8")
        info = self._camera_info
        if info is not None:
            info.header = msg.header
            pubs["camera_info"].publish(info)
        self._latency.add(time.monotonic() - frame.received)
        self._output_rate.tick()
        stamp_age = self.get_clock().now().nanoseconds - Time.from_msg(msg.header.stamp).nanoseconds
        self._stamp_age.add(stamp_age * 1e-9)

    def _publish_image(self, key: str, header: Any, array: Any, encoding: str) -> None:
        out = Image(header=header)
        self._pubs[key].publish(fill_image(out, array, encoding))

    def _on_frame_error(self, frame: _Frame, exc: Exception) -> None:
        # ValueError covers CodecError (malformed message) and images the model cannot take.
        if isinstance(exc, ValueError):
            self._rejected += 1
            self.get_logger().error(
                f"dropping a bad frame from {self.input_topic}: {exc} ({self._rejected} rejected so far)",
                throttle_duration_sec=ERROR_LOG_THROTTLE_S)
        else:
            self.get_logger().error(f"inference failed on a frame from {self.input_topic}: {exc!r}",
                                    throttle_duration_sec=ERROR_LOG_THROTTLE_S)

    def _publish_label_info(self) -> None:
        pub = self._pubs.get("label_info")
        if pub is None:
            return
        msg = LabelInfo()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.threshold = 0.0  # labels are an argmax, not thresholded scores
        msg.class_map = [VisionClass(class_id=i, class_name=n)
                         for i, n in label_info_entries(self.segmenter.meta.class_names,
                                                        self.segmenter.meta.ignore_index)]
        pub.publish(msg)

    # ---------------------------------------------------------------- diagnostics
    def _reset_stats(self) -> None:
        self._input_rate, self._output_rate = RateMeter(), RateMeter()
        self._latency, self._stamp_age = LatencyStats(), LatencyStats()
        self._rejected = 0
        self._activated = self._last_input = time.monotonic()
        self._next_warning = self.config.no_frame_warning
        self._subscription_qos = ""

    def report(self) -> NodeReport:
        """A snapshot of the node's state, rates and counters."""
        stats = self._pipeline.stats() if self._pipeline is not None else None
        seg = self.segmenter
        now = time.monotonic()
        return NodeReport(
            state=self._state, input_topic=self.input_topic, subscription_qos=self._subscription_qos,
            input_rate_hz=self._input_rate.rate(now), output_rate_hz=self._output_rate.rate(now),
            latency_mean_ms=self._latency.mean() * 1e3, latency_p99_ms=self._latency.percentile(99) * 1e3,
            stamp_age_ms=self._stamp_age.mean() * 1e3,
            frames_received=stats.received if stats else 0,
            frames_processed=stats.processed if stats else 0,
            frames_dropped=stats.dropped if stats else 0,
            frames_rejected=self._rejected,
            frames_failed=stats.failed - self._rejected if stats else 0,
            frames_waiting=stats.waiting if stats else 0,
            seconds_since_input=now - self._last_input if self._state == "active" else float("nan"),
            no_frame_warning=self.config.no_frame_warning,
            device=seg.device if seg else "none", precision=seg.precision if seg else "none",
            backend=seg.backend if seg else "none", model=seg.meta.arch if seg else "none",
        )

    def _on_diagnostics_timer(self) -> None:
        if self._state == "active":
            self._update_subscription()
        report = self.report()
        level, message = report.level()
        status = DiagnosticStatus(level=bytes([level]), name=f"{self.get_name()}: segmentation",
                                  message=message, hardware_id=report.device,
                                  values=[KeyValue(key=k, value=v) for k, v in report.key_values()])
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(array)
        now = time.monotonic()
        period = self.config.stats_log_period
        if period > 0 and now - self._last_log >= period and self._state == "active":
            self._last_log = now
            self.get_logger().info(report.log_line())
        if self._state == "active" and report.frames_received == 0:
            self._warn_if_no_frames(now - self._activated)

    def _warn_if_no_frames(self, waited: float) -> None:
        if self.config.no_frame_warning <= 0 or waited < self._next_warning:
            return
        self._next_warning *= 2  # repeat with growing intervals, then keep waiting
        publishers = self.get_publishers_info_by_topic(self.input_topic)
        offered = ", ".join(sorted({policy_name(p.qos_profile.reliability) for p in publishers})) or "none"
        qos = self._image_sub.qos_profile if self._image_sub is not None else image_qos("best_effort", 1)
        self.get_logger().warning(
            f"no image received on {self.input_topic} after {waited:.0f} s; subscribed with QoS "
            f"{describe_qos(qos)}: {publisher_requirement(qos)}. Publishers on the topic: {len(publishers)} "
            f"(reliability offered: {offered}). Check the topic name (remap 'image'), the camera's QoS and, "
            f"for large frames, that the camera process also uses the Fast DDS profile "
            f"fastdds_large_frames.xml. Still waiting.")


def main(argv: list[str] | None = None) -> int:
    """Run the node until Ctrl-C/SIGTERM; returns the process exit code."""
    profile = use_transport_profile()
    rclpy.init(args=sys.argv if argv is None else argv)
    node = None
    try:
        node = BiAlignNode()
        if profile is not None:
            node.get_logger().info(f"Fast DDS transport profile for large frames: {profile}")
        if node.config.autostart:
            if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                return 1 if node.context.ok() else 0  # not ok: interrupted while loading
            node.trigger_activate()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except ParamError as exc:
        rclpy.logging.get_logger(NODE_NAME).error(str(exc))
        return 1
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.release()
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
