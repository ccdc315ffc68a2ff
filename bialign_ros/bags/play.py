"""Replay a bag over ROS with rclpy, with the recorded timing scaled by a rate.

For the pip environment, where ``ros2 bag play`` is not installed. Messages are read with
``rosbags`` and their serialised bytes published unchanged at
``first_wall + (log_time - first_log_time) / rate``. The first message of every topic is decoded
with rclpy (:mod:`bialign_ros.bags.to_rclpy`) to check that the bag's definition is the installed
one; topics whose message package is not installed, or whose messages rclpy cannot read, are
skipped with a note. ``clock`` publishes ``/clock`` (bag time) for nodes
running with ``use_sim_time``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock

from bialign_ros.bags.io import BagReader
from bialign_ros.bags.to_rclpy import rclpy_class, to_rclpy
from bialign_ros.raw_publish import publish_serialized

LOG = logging.getLogger(__name__)
CLOCK_TOPIC = "/clock"
ACK_TIMEOUT_S = 2.0
"""How long reliable publishers wait at the end for subscribers to acknowledge the last messages."""
RELIABILITIES = {"reliable": ReliabilityPolicy.RELIABLE, "best_effort": ReliabilityPolicy.BEST_EFFORT}


@dataclass(frozen=True)
class PlayOptions:
    """Settings of :class:`BagPlayer`."""

    rate: float = 1.0
    """Playback speed relative to the recording (2.0: twice as fast)."""
    loop: bool = False
    topics: tuple[str, ...] = ()
    """Topics to play (empty: all)."""
    clock_hz: float = 0.0
    """Publish /clock at this rate while playing (0: no clock)."""
    reliability: str = "reliable"
    depth: int = 10
    wait_for_subscribers: float = 0.0
    """Seconds to wait, before playing, for every played topic to have a subscriber."""
    delay: float = 0.0
    """Seconds to wait before playing (after any waiting for subscribers)."""

    def __post_init__(self) -> None:
        if not self.rate > 0:
            raise ValueError(f"rate must be positive, got {self.rate}")
        if self.clock_hz < 0:
            raise ValueError(f"clock rate must be >= 0 Hz, got {self.clock_hz}")
        if self.reliability not in RELIABILITIES:
            raise ValueError(f"reliability must be one of {', '.join(RELIABILITIES)}, "
                             f"got {self.reliability!r}")
        if self.depth < 1:
            raise ValueError(f"QoS depth must be >= 1, got {self.depth}")


@dataclass
class PlayStats:
    """What a replay published."""

    published: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    """Topics not played, with the reason."""
    loops: int = 0
    damage: str | None = None


def _time_msg(ns: int) -> Any:
    msg = Clock()
    msg.clock.sec, msg.clock.nanosec = divmod(int(ns), 1_000_000_000)
    return msg


class BagPlayer:
    """Publishes the messages of a bag on ``node`` (see the module doc)."""

    def __init__(self, node: Node, reader: BagReader, options: PlayOptions) -> None:
        self.reader = reader
        self.options = options
        self.stats = PlayStats()
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=options.depth,
                         reliability=RELIABILITIES[options.reliability], durability=DurabilityPolicy.VOLATILE)
        for name in options.topics:
            reader.topic(name)
        wanted = set(options.topics) or set(reader.topics)
        self._classes: dict[str, type] = {}
        self._publishers: dict[str, Any] = {}
        for name, info in sorted(reader.topics.items()):
            if name not in wanted:
                continue
            cls = rclpy_class(info.msgtype)
            if cls is None:
                self.stats.skipped[name] = f"no Python message package for {info.msgtype}"
                continue
            self._classes[name] = cls
            self._publishers[name] = node.create_publisher(cls, name, qos)
            self.stats.published[name] = 0
        self._clock = node.create_publisher(Clock, CLOCK_TOPIC, 10) if options.clock_hz > 0 else None
        self._last_clock = -1

    @property
    def topics(self) -> Collection[str]:
        """The topics being played."""
        return self._publishers.keys()

    def wait_for_subscribers(self, timeout: float) -> list[str]:
        """Wait up to ``timeout`` s for every played topic to have a subscriber; returns those without."""
        deadline = time.monotonic() + timeout
        while True:
            missing = [t for t, p in self._publishers.items() if p.get_subscription_count() == 0]
            if not missing or time.monotonic() >= deadline:
                return missing
            time.sleep(0.05)

    def play(self) -> PlayStats:
        """Publish the bag (repeatedly with ``loop``) and return what was published."""
        if self.options.wait_for_subscribers > 0:
            missing = self.wait_for_subscribers(self.options.wait_for_subscribers)
            if missing:
                LOG.warning("no subscriber after %.0f s on %s; playing anyway",
                            self.options.wait_for_subscribers, ", ".join(missing))
        if self.options.delay > 0:
            time.sleep(self.options.delay)
        while True:
            self._play_once()
            self.stats.loops += 1
            self.stats.damage = self.reader.damage
            if not self.options.loop or not any(self.stats.published.values()):
                break
        for pub in self._publishers.values():
            if self.options.reliability == "reliable":
                pub.wait_for_all_acked(Duration(seconds=ACK_TIMEOUT_S))
        return self.stats

    def _play_once(self) -> None:
        start_wall = first_log = None
        self._last_clock = -1  # bag time restarts with every loop
        next_clock = time.monotonic()
        checked: set[str] = set()
        failed: set[str] = set()
        for message in self.reader.messages(self.topics):
            if start_wall is None:
                start_wall, first_log = time.monotonic(), message.log_time
            due = start_wall + (message.log_time - first_log) / 1e9 / self.options.rate
            while True:
                now = time.monotonic()
                if self._clock is not None and now >= next_clock:
                    elapsed = first_log + int((now - start_wall) * self.options.rate * 1e9)
                    self._publish_clock(min(elapsed, message.log_time))
                    next_clock = now + 1.0 / self.options.clock_hz
                if now >= due:
                    break
                time.sleep((min(due, next_clock) if self._clock is not None else due) - now)
            if message.topic in failed:
                continue
            if message.topic not in checked:
                try:
                    to_rclpy(message.data, self._classes[message.topic])
                except ValueError as exc:
                    failed.add(message.topic)
                    self.stats.skipped[message.topic] = f"cannot read {message.msgtype}: {exc}"
                    LOG.warning("skipping %s: %s", message.topic, self.stats.skipped[message.topic])
                    continue
                checked.add(message.topic)
            if self._clock is not None:
                self._publish_clock(message.log_time)
            publish_serialized(self._publishers[message.topic], np.frombuffer(message.data, np.uint8))
            self.stats.published[message.topic] += 1

    def _publish_clock(self, bag_time: int) -> None:
        """Publish /clock, never backwards within one pass over the bag."""
        self._last_clock = max(self._last_clock, bag_time)
        self._clock.publish(_time_msg(self._last_clock))


def describe(stats: PlayStats) -> str:
    """One line: messages published per topic and what was skipped."""
    published = ", ".join(f"{n} on {t}" for t, n in sorted(stats.published.items()))
    skipped = "; ".join(f"skipped {t} ({why})" for t, why in sorted(stats.skipped.items()))
    return f"published {published or 'nothing'}" + (f"; {skipped}" if skipped else "")
