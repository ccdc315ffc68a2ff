"""Hands frames from a subscription callback to one inference thread.

The callback only calls :meth:`FramePipeline.submit`, which never blocks on inference. With
``drop_frames=True`` (the default) the latest frame wins: one frame may wait while another is
processed, and a newer frame replaces the waiting one, which is counted as dropped, so latency
never grows with a backlog. With ``drop_frames=False`` (evaluation mode) every frame is kept
in a FIFO and processed in arrival order.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class PipelineStats:
    """Counters of a :class:`FramePipeline` at one moment."""

    received: int
    """Frames submitted."""
    processed: int
    """Frames whose processing returned normally."""
    dropped: int
    """Frames replaced by a newer one before processing (latest-frame-wins mode only)."""
    failed: int
    """Frames whose processing raised an exception."""
    waiting: int
    """Frames submitted but not yet taken by the worker."""


class FramePipeline(Generic[T]):
    """A one-slot (or FIFO) buffer and the worker thread that drains it."""

    def __init__(
        self,
        process: Callable[[T], None],
        *,
        drop_frames: bool = True,
        on_error: Callable[[T, Exception], None] | None = None,
        name: str = "bialign-inference",
    ) -> None:
        """``process`` runs on the worker for every frame taken; ``on_error`` gets what it raises."""
        self._process = process
        self._on_error = on_error
        self.drop_frames = drop_frames
        self._queue: deque[T] = deque(maxlen=1 if drop_frames else None)
        self._cond = threading.Condition()
        self._busy = False
        self._stopping = False
        self._received = self._processed = self._dropped = self._failed = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> FramePipeline[T]:
        """Start the worker thread; returns ``self``."""
        self._thread.start()
        return self

    def submit(self, frame: T) -> bool:
        """Queue ``frame``; returns False when it replaced a waiting frame (counted as dropped)."""
        with self._cond:
            replaced = self.drop_frames and len(self._queue) == 1
            self._queue.append(frame)  # a full maxlen=1 deque discards the waiting frame
            self._received += 1
            if replaced:
                self._dropped += 1
            self._cond.notify_all()
        return not replaced

    def stats(self) -> PipelineStats:
        """A consistent snapshot of the counters."""
        with self._cond:
            return PipelineStats(self._received, self._processed, self._dropped, self._failed,
                                 len(self._queue))

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no frame waits or runs; False if ``timeout`` (seconds) passed first."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._busy, timeout)

    def stop(self, timeout: float | None = 10.0) -> bool:
        """Stop the worker after the frame in progress; waiting frames are discarded.

        Returns False if the worker was still busy when ``timeout`` passed.
        """
        with self._cond:
            self._stopping = True
            self._queue.clear()
            self._cond.notify_all()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._stopping)
                if self._stopping:
                    return
                frame = self._queue.popleft()
                self._busy = True
            try:
                self._process(frame)
            except Exception as exc:  # one failing frame must not stop the worker
                ok = False
                if self._on_error is not None:
                    self._on_error(frame, exc)
            else:
                ok = True
            with self._cond:
                self._busy = False
                if ok:
                    self._processed += 1
                else:
                    self._failed += 1
                self._cond.notify_all()
