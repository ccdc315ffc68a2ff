"""Thread-safe running statistics for the node's diagnostics: event rates, latency and frame counters."""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import numpy as np


class RateMeter:
    """Events per second over a sliding time window.

    The rate is measured between the first and last event still inside the window, so it is
    right after two events and falls to 0 once events stop for a whole window.
    """

    def __init__(self, window: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        if window <= 0:
            raise ValueError(f"window must be positive, got {window}")
        self.window = window
        self._clock = clock
        self._times: deque[float] = deque()
        self._total = 0
        self._lock = threading.Lock()

    def tick(self, t: float | None = None) -> None:
        """Record one event at time ``t`` (default: now)."""
        t = self._clock() if t is None else t
        with self._lock:
            self._times.append(t)
            self._total += 1
            self._expire(t)

    def rate(self, now: float | None = None) -> float:
        """Events per second within the window ending at ``now``."""
        now = self._clock() if now is None else now
        with self._lock:
            self._expire(now)
            if len(self._times) < 2:
                return 0.0
            span = self._times[-1] - self._times[0]
            return (len(self._times) - 1) / span if span > 0 else 0.0

    @property
    def total(self) -> int:
        """Events recorded since creation."""
        return self._total

    def _expire(self, now: float) -> None:
        while self._times and self._times[0] < now - self.window:
            self._times.popleft()


class CpuMeter:
    """CPU time of this process per second of wall time between two readings, in % of one core (200
    when two cores are busy): every thread counts, the model's own thread pools included."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 cpu: Callable[[], float] = time.process_time) -> None:
        self._clock, self._cpu = clock, cpu
        self._last = (clock(), cpu())

    def percent(self) -> float:
        """CPU % since the previous reading (or since creation); NaN when no wall time has passed."""
        now, used = self._clock(), self._cpu()
        wall, cpu = now - self._last[0], used - self._last[1]
        self._last = (now, used)
        return 100.0 * cpu / wall if wall > 0 else float("nan")


def thread_cpu_seconds(task_dir: str | Path = "/proc/self/task") -> dict[int, tuple[str, float]]:
    """Thread id -> (kernel name, user + system CPU seconds) of every thread of a process, read from
    Linux's ``/proc/<pid>/task``; empty where there is no such directory. Threads that end while
    it is read are left out."""
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    found: dict[int, tuple[str, float]] = {}
    try:
        tasks = list(Path(task_dir).iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue
        # "tid (name) state ...": the name may hold spaces and parentheses, the fields after it not
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        found[int(task.name)] = (name, (int(fields[11]) + int(fields[12])) / ticks)  # utime, stime
    return found


class ThreadCpuMeter:
    """CPU time per group of this process's threads per second of wall time between two readings, in %
    of one core (Linux; no groups elsewhere): where a process's cores go. A thread that ended since
    the previous reading is left out of the next."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 read: Callable[[], dict[int, tuple[str, float]]] = thread_cpu_seconds) -> None:
        self._clock, self._read = clock, read
        self._last = (clock(), read())

    def percent(self, group: Callable[[int, str], str]) -> dict[str, float]:
        """CPU % of each group since the previous reading (or since creation), by group name; empty
        when no wall time has passed. ``group(tid, name)`` names a thread's group from its id and
        kernel name."""
        now, threads = self._clock(), self._read()
        (then, before), self._last = self._last, (now, threads)
        if now <= then:
            return {}
        used: dict[str, float] = {}
        for tid, (name, seconds) in threads.items():
            key = group(tid, name)
            used[key] = used.get(key, 0.0) + seconds - before.get(tid, (name, 0.0))[1]
        return {key: 100.0 * used[key] / (now - then) for key in sorted(used)}


class LatencyStats:
    """Mean and percentiles of the most recent latencies (seconds)."""

    def __init__(self, size: int = 300) -> None:
        if size < 1:
            raise ValueError(f"size must be at least 1, got {size}")
        self._values: deque[float] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, seconds: float) -> None:
        """Record one latency."""
        with self._lock:
            self._values.append(seconds)

    def __len__(self) -> int:
        return len(self._values)

    def mean(self) -> float:
        """Mean of the recorded latencies; NaN when there are none."""
        with self._lock:
            return float(np.mean(self._values)) if self._values else float("nan")

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile (0-100) of the recorded latencies; NaN when there are none."""
        if not 0.0 <= q <= 100.0:
            raise ValueError(f"percentile must be in [0, 100], got {q}")
        with self._lock:
            return float(np.percentile(self._values, q)) if self._values else float("nan")


class StreamStats:
    """Rates, latencies and counters of one stream of frames: one camera, or all of a node's cameras.

    The subscription callbacks record inputs, the pipeline threads everything else, and the
    diagnostics timer reads them.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.input_rate, self.output_rate = RateMeter(clock=clock), RateMeter(clock=clock)
        self.latency, self.stamp_age = LatencyStats(), LatencyStats()
        self.processing = LatencyStats()
        """Seconds the inference thread spent on each batch: decoding and forward pass."""
        self.publishing = LatencyStats()
        """Seconds the publishing thread spent on each frame: rendering and publishing its outputs."""
        self.rendered: dict[str, int] = {}
        """How many times each output image was computed (the optional ones only when wanted)."""
        self.last_input = clock()
        """Time of the last input frame; of the creation until one arrives."""
        self.rejected = self.forward_passes = self.batched_frames = 0
        self._lock = threading.Lock()

    def frame_in(self, t: float) -> None:
        """Record an input frame that arrived at ``t``."""
        self.input_rate.tick(t)
        self.last_input = t

    def frame_out(self, latency: float, stamp_age: float) -> None:
        """Record a published frame: seconds since it arrived, and since its header stamp."""
        self.output_rate.tick()
        self.latency.add(latency)
        self.stamp_age.add(stamp_age)

    def forward_pass(self, frames: int, shared: bool) -> None:
        """Record a forward pass that took ``frames`` frames of this stream; ``shared`` when it also
        took frames of other cameras (or of several: a batch)."""
        with self._lock:
            self.forward_passes += 1
            if shared:
                self.batched_frames += frames

    def output_rendered(self, name: str) -> None:
        """Count one computed output image ``name``."""
        with self._lock:
            self.rendered[name] = self.rendered.get(name, 0) + 1

    def reject(self) -> int:
        """Count a bad input frame; returns the count so far."""
        with self._lock:
            self.rejected += 1
            return self.rejected
