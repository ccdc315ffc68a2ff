"""Thread-safe running statistics for the node's diagnostics: event rates and latency."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

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
