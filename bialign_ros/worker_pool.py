"""Threads that share out the bands of one image's post-processing (NumPy and OpenCV release the GIL)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from bialign_ros.backends.base import physical_cores

A = TypeVar("A")
T = TypeVar("T")

MAX_WORKERS = 4
"""Threads one image's post-processing takes at most (the work is memory bound beyond that)."""


class WorkerPool:
    """Runs work items on ``workers`` threads (default: the physical cores, at most :data:`MAX_WORKERS`),
    started on first use; with one worker, or one item, the caller's thread does the work."""

    def __init__(self, workers: int = 0, name: str = "workers") -> None:
        self.workers = workers or min(physical_cores(), MAX_WORKERS)
        self.name = name
        self._pool: ThreadPoolExecutor | None = None
        self._starting = threading.Lock()  # the node's inference streams may call map at once

    def map(self, work: Callable[[A], T], items: Sequence[A]) -> list[T]:
        """``work`` on each item, results in the items' order; the first exception raised propagates."""
        if len(items) == 1 or self.workers == 1:
            return [work(item) for item in items]
        with self._starting:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix=self.name)
            pool = self._pool
        return list(pool.map(work, items))

    def close(self) -> None:
        """Stops the threads (a later :meth:`map` starts them again)."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
