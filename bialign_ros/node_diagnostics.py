"""The ``bialign`` node's ``/diagnostics``: statistics, reports, the periodic log line and the
no-frame warning.

:class:`DiagnosticsMixin` is part of :class:`bialign_ros.node.BiAlignNode`; the wording and
thresholds of a report live in the pure-Python :mod:`bialign_ros.node_report`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from bialign_ros.batch_pipeline import PipelineStats
from bialign_ros.node_interface import DIAGNOSTICS_TOPIC, diagnostic_name
from bialign_ros.node_report import THREAD_GROUPS, NodeReport, thread_group
from bialign_ros.outputs import OPTIONAL_OUTPUTS
from bialign_ros.qos import describe_qos, image_qos, policy_name, publisher_requirement
from bialign_ros.rate_stats import CpuMeter, StreamStats, ThreadCpuMeter

DIAGNOSTICS_PERIOD_S = 1.0


class DiagnosticsMixin:
    """Counts and reports for a node with ``config``, ``cameras``, ``segmenter``, ``_pipeline`` and
    ``_state`` (see :class:`bialign_ros.node.BiAlignNode`). Publishes once a second, whatever the
    lifecycle state and whether or not anyone subscribes to the outputs."""

    def _start_diagnostics(self) -> None:
        self._reset_stats()
        self._diag_pub = self.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, 10)
        self._diag_timer = self.create_timer(DIAGNOSTICS_PERIOD_S, self._on_diagnostics_timer)
        self._last_log = time.monotonic()

    def _reset_stats(self) -> None:
        self._stats = StreamStats()
        self._cpu = CpuMeter()
        self._thread_cpu = ThreadCpuMeter()
        for cam in self.cameras:
            cam.stats = StreamStats()
            cam.subscription_qos = ""
        self._activated = time.monotonic()
        self._next_warning = self.config.no_frame_warning

    def _report(self, stats: StreamStats, counts: PipelineStats | None, now: float,
                **scope: Any) -> NodeReport:
        seg = self.segmenter
        return NodeReport(
            state=self._state, input_rate_hz=stats.input_rate.rate(now),
            output_rate_hz=stats.output_rate.rate(now),
            latency_mean_ms=stats.latency.mean() * 1e3, latency_p99_ms=stats.latency.percentile(99) * 1e3,
            stamp_age_ms=stats.stamp_age.mean() * 1e3,
            frames_received=counts.received if counts else 0,
            frames_processed=counts.processed if counts else 0,
            frames_dropped=counts.dropped if counts else 0,
            frames_rejected=stats.rejected,
            frames_failed=counts.failed - stats.rejected if counts else 0,
            frames_waiting=counts.waiting if counts else 0,
            seconds_since_input=now - stats.last_input if self._state == "active" else float("nan"),
            no_frame_warning=self.config.no_frame_warning,
            device=seg.device if seg else "none", precision=seg.precision if seg else "none",
            backend=seg.backend if seg else "none", model=seg.meta.arch if seg else "none",
            forward_passes=stats.forward_passes, batched_frames=stats.batched_frames,
            processing_mean_ms=stats.processing.mean() * 1e3, publishing_mean_ms=stats.publishing.mean() * 1e3,
            outputs_rendered=tuple((name, stats.rendered.get(name, 0)) for name in OPTIONAL_OUTPUTS), **scope)

    def camera_reports(self) -> list[NodeReport]:
        """A snapshot per camera, when the node serves several (parameter ``cameras``); else empty."""
        if not self.config.cameras:
            return []
        now = time.monotonic()
        pipeline = self._pipeline
        return [self._report(cam.stats, pipeline.stats(cam.name) if pipeline else None, now, camera=cam.name,
                             input_topic=cam.input_topic, subscription_qos=cam.subscription_qos)
                for cam in self.cameras]

    def report(self, camera_reports: list[NodeReport] | None = None) -> NodeReport:
        """A snapshot of the node's state, rates and counters (``camera_reports``: the cameras' own)."""
        now = time.monotonic()
        pipeline = self._pipeline
        cpu = self._cpu.percent()
        by_group = self._thread_cpu.percent(self._thread_group())  # empty where /proc has no threads
        threads = tuple((group, by_group.get(group, 0.0)) for group in THREAD_GROUPS) if by_group else ()
        if not self.config.cameras:
            cam = self.cameras[0]
            return self._report(self._stats, pipeline.stats() if pipeline else None, now,
                                input_topic=cam.input_topic, subscription_qos=cam.subscription_qos, cpu_percent=cpu,
                                cpu_threads=threads)
        reports = self.camera_reports() if camera_reports is None else camera_reports
        silent = tuple(r.camera for r in reports if r.silent)
        qos = "; ".join(f"{c.name}: {c.subscription_qos}" for c in self.cameras)
        return self._report(self._stats, pipeline.stats() if pipeline else None, now,
                            input_topic=self.input_topic, subscription_qos=qos, cameras=self.config.cameras,
                            silent_cameras=silent, cpu_percent=cpu, cpu_threads=threads)

    def _thread_group(self) -> Callable[[int, str], str]:
        """:func:`thread_group` for the node's threads as they are now."""
        python = {t.native_id: t.name for t in threading.enumerate()}
        pipeline = self._pipeline.thread_names if self._pipeline else ()
        return lambda tid, name: thread_group(python.get(tid), name, pipeline)

    def _status(self, report: NodeReport) -> DiagnosticStatus:
        level, message = report.level()
        return DiagnosticStatus(level=bytes([level]), name=diagnostic_name(self.get_name(), report.camera),
                                message=message, hardware_id=report.device,
                                values=[KeyValue(key=k, value=v) for k, v in report.key_values()])

    def _on_diagnostics_timer(self) -> None:
        if self._state == "active":
            for cam in self.cameras:
                self._update_subscription(cam)
        cameras = self.camera_reports()
        report = self.report(cameras)
        array = DiagnosticArray(status=[self._status(r) for r in (report, *cameras)])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(array)
        now = time.monotonic()
        period = self.config.stats_log_period
        if period > 0 and now - self._last_log >= period and self._state == "active":
            self._last_log = now
            self.get_logger().info(report.log_line())
        if self._state == "active":
            silent = [cam for cam in self.cameras if self._pipeline.stats(cam.name).received == 0]
            if silent:
                self._warn_if_no_frames(silent, now - self._activated)

    def _warn_if_no_frames(self, silent: list[Any], waited: float) -> None:
        """Say which cameras sent nothing yet, with the QoS a publisher needs to match."""
        if self.config.no_frame_warning <= 0 or waited < self._next_warning:
            return
        self._next_warning *= 2  # repeat with growing intervals, then keep waiting
        checks = "Check the topic name (remap 'image')" if not self.config.cameras else (
            "Check the topic names (remap '<camera>/image')")
        details = []
        for cam in silent:
            publishers = self.get_publishers_info_by_topic(cam.input_topic)
            offered = ", ".join(sorted({policy_name(p.qos_profile.reliability) for p in publishers}))
            qos = cam.image_sub.qos_profile if cam.image_sub is not None else image_qos("best_effort", 1)
            details.append(f"{cam.input_topic} after {waited:.0f} s; subscribed with QoS "
                           f"{describe_qos(qos)}: {publisher_requirement(qos)}. Publishers on the topic: "
                           f"{len(publishers)} (reliability offered: {offered or 'none'}).")
        if self.config.cameras:
            names = ", ".join(cam.name for cam in silent)
            what = f"no image received from camera(s) {names}: " + " ".join(
                f"camera {cam.name}: nothing on {detail}" for cam, detail in zip(silent, details))
        else:
            what = f"no image received on {details[0]}"
        self.get_logger().warning(
            f"{what} {checks}, the camera's QoS and, for large frames, that the camera process also uses the "
            f"Fast DDS profile fastdds_large_frames.xml. Still waiting.")
