"""Helpers for multi-process ROS tests: the node as a child process and an in-process peer node.

Every child runs in its own process group on the test's ``ROS_DOMAIN_ID`` with discovery kept
on this host, and is stopped (Ctrl-C, then killed with its children) when a test ends or fails.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rclpy
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions

from bialign_ros.cli.processes import ChildProcess, python_module, ros_env, wait_until
from bialign_ros.ros_domains import pick_domain_id

__all__ = ["ChildProcess", "ros_env", "wait_until"]

ROOT = Path(__file__).resolve().parents[1]
RESEND_S = 5.0


def next_domain_id() -> int:
    """A ROS domain for one test, from the tests' range of :mod:`bialign_ros.ros_domains`."""
    return pick_domain_id("tests")


def start_node(domain_id: int, *ros_args: str) -> ChildProcess:
    """Start ``python -m bialign_ros.node --ros-args ...`` on ``domain_id``.

    A ``.pt`` file runs in fp32 unless ``ros_args`` set the precision: the tests hold the node's
    outputs to fp32 references, and ``auto`` is bf16 on CPUs with AMX."""
    pinned = any(a.startswith("precision:=") for a in ros_args) or \
        not any(a.startswith("weights:=") and a.endswith(".pt") for a in ros_args)
    args = ros_args if pinned else (*ros_args, "-p", "precision:=fp32")
    return ChildProcess(python_module("bialign_ros.node", "--ros-args", *args), ros_env(domain_id), cwd=ROOT)


def reliable(depth: int = 10) -> QoSProfile:
    """A reliable keep-last profile."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


def best_effort(depth: int = 10) -> QoSProfile:
    """A best-effort keep-last profile (the sensor-data reliability)."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.VOLATILE)


@dataclass
class Received:
    """One received message and the monotonic time it arrived."""

    msg: Any
    at: float


class Collector:
    """Keeps every message of one subscription."""

    def __init__(self) -> None:
        self.items: list[Received] = []

    def __call__(self, msg: Any) -> None:
        self.items.append(Received(msg, time.monotonic()))

    @property
    def msgs(self) -> list[Any]:
        """The received messages, oldest first."""
        return [r.msg for r in self.items]

    def wait_for(self, predicate: Callable[[Any], bool], timeout: float) -> Any:
        """The first message matching ``predicate``, waiting up to ``timeout`` s; None if none came."""
        def find() -> Any:
            return next((m for m in list(self.msgs) if predicate(m)), None)
        return wait_until(find, timeout)


class RosPeer:
    """A node in the test process, in its own rclpy context on ``domain_id``, spun on a thread."""

    def __init__(self, domain_id: int, name: str = "test_peer", spin: bool = True) -> None:
        """``spin=False``: no thread spins the node; the code under test spins ``self.executor``."""
        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain_id, signal_handler_options=SignalHandlerOptions.NO)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._subscriptions: list[Any] = []
        self._thread = threading.Thread(target=self._spin, daemon=True)
        if spin:
            self._thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except ExternalShutdownException:
            pass

    def collect(self, msg_type: type, topic: str, qos: QoSProfile | None = None) -> Collector:
        """Subscribe ``topic`` and keep every message."""
        collector = Collector()
        subscription = self.node.create_subscription(msg_type, topic, collector, qos or reliable())
        self._subscriptions.append(subscription)
        return collector

    def publisher(self, msg_type: type, topic: str, qos: QoSProfile | None = None) -> Any:
        """A publisher on ``topic``."""
        return self.node.create_publisher(msg_type, topic, qos or reliable())

    def wait_for_subscribers(self, publisher: Any, count: int = 1, timeout: float = 30.0) -> bool:
        """True once ``publisher`` has matched ``count`` subscriptions."""
        return bool(wait_until(lambda: publisher.get_subscription_count() >= count, timeout))

    def wait_for_publishers(self, topic: str, count: int = 1, timeout: float = 30.0) -> bool:
        """True once ``topic`` has ``count`` publishers and each of this peer's subscriptions to it has
        matched them: a reliable publisher drops what it sent before a reader matched, and the graph
        can list a publisher before its readers match."""
        name = self.node.resolve_topic_name(topic)
        readers = [s for s in self._subscriptions if s.topic_name == name]

        def matched() -> bool:
            return (self.node.count_publishers(topic) >= count
                    and all(r.get_publisher_count() >= count for r in readers))
        return bool(wait_until(matched, timeout))

    def call(self, srv_type: type, name: str, request: Any, timeout: float = 10.0,
             idempotent: bool = True) -> Any:
        """Call a service and return its response (None on timeout).

        Fast DDS can lose a response when the service answers before its response writer has
        matched this client's reader (ros2/rmw_fastrtps#842), which happens on a loaded machine.
        An idempotent request is therefore sent again every ``RESEND_S`` seconds until one
        response arrives; any other is sent once.
        """
        client = self.node.create_client(srv_type, name)
        deadline = time.monotonic() + timeout
        try:
            if not client.wait_for_service(timeout_sec=timeout):
                return None
            while True:
                future = client.call_async(request)
                left = deadline - time.monotonic()
                if wait_until(future.done, min(left, RESEND_S) if idempotent else left):
                    return future.result()
                client.remove_pending_request(future)
                if time.monotonic() >= deadline:
                    return None
        finally:
            self.node.destroy_client(client)

    def now_msg(self) -> Any:
        """The peer's clock now, as a ``builtin_interfaces/Time``."""
        return self.node.get_clock().now().to_msg()

    def close(self) -> None:
        """Stop spinning and shut the context down."""
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        if self._thread.is_alive():
            self._thread.join(5)
