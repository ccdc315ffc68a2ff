"""Hands the frames of several cameras from subscription callbacks to one inference thread, in batches.

Each stream (camera) has its own slot. With ``drop_frames=True`` (the default) the latest frame
of a stream wins: a newer frame replaces that stream's waiting frame, which is counted as
dropped for that stream, so latency never grows with a backlog. With ``drop_frames=False``
(evaluation mode) each stream keeps a FIFO and every frame is processed, each stream's frames
in arrival order.

The worker takes the waiting frames of every stream at once (in evaluation mode the oldest
frame of each stream) and hands them to ``process`` as one batch, oldest first, so frames
that arrive together can run in one forward pass. With a ``batch_window``, the oldest waiting
frame waits at most that long for the other streams' frames, and not at all once every stream
has a frame waiting: hardware-synchronised cameras arrive within milliseconds of each other.

Processing runs in two stages on two threads. ``process`` may return, for a frame, a step (a
function of no arguments, typically "render and publish this frame's outputs") instead of its
outcome; the steps of a batch run on the second thread while the worker takes on the next batch,
so a frame's publishing overlaps the next frame's inference. At most one batch is in the second
stage: a worker hands a batch over only once the previous one is finished, so a slow second stage
holds the workers back rather than queueing results (latency stays bounded).

With ``workers`` > 1 that many worker threads take batches, each the newest waiting frames when it
becomes free, so several frames are in inference at once (each with its share of the cores: frames
take longer, more come out per second). Batches reach the second stage in the order they were
taken, so a camera's frames always come out in stamp order.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
U = TypeVar("U")

Outcome = Exception | None
"""What processing one frame came to: None when it succeeded, else the exception it failed with."""

Step = Callable[[], Outcome]
"""The rest of a frame's processing, run on the pipeline's second thread; returns (or raises) its outcome."""


@dataclass(frozen=True)
class PipelineStats:
    """Counters of a pipeline (or of one of its streams) at one moment."""

    received: int
    """Frames submitted."""
    processed: int
    """Frames whose processing succeeded."""
    dropped: int
    """Frames replaced by a newer one of their stream before processing (latest-frame-wins mode only)."""
    failed: int
    """Frames whose processing failed."""
    waiting: int
    """Frames submitted but not yet taken by the worker."""


@dataclass(frozen=True)
class Pending(Generic[T]):
    """A submitted frame as the worker hands it to ``process``."""

    stream: str
    frame: T
    order: int
    """Arrival number across all streams (0 for the first frame submitted)."""
    arrived: float
    """time.monotonic() at submission."""


@dataclass
class _Counters:
    received: int = 0
    processed: int = 0
    dropped: int = 0
    failed: int = 0


def group_by(items: Iterable[U], key: Callable[[U], Hashable]) -> list[list[U]]:
    """``items`` split into groups of equal ``key``, groups in order of first appearance, items in order."""
    groups: dict[Hashable, list[U]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return list(groups.values())


class BatchPipeline(Generic[T]):
    """One slot (or FIFO) per stream and the worker thread that drains them in batches."""

    def __init__(
        self,
        process: Callable[[list[Pending[T]]], Sequence[Outcome | Step]],
        streams: Sequence[str] = ("",),
        *,
        drop_frames: bool = True,
        batch_window: float = 0.0,
        on_error: Callable[[Pending[T], Exception], None] | None = None,
        name: str = "bialign-inference",
        workers: int = 1,
    ) -> None:
        """``process`` runs on a worker for every batch taken and returns one outcome, or one
        :data:`Step` to finish it on the second thread, per frame (raising fails the whole batch);
        ``on_error`` gets each failed frame and its exception, from any thread. With ``workers`` > 1,
        ``process`` runs on that many threads at once."""
        if not streams:
            raise ValueError("a pipeline needs at least one stream")
        if len(set(streams)) != len(streams):
            raise ValueError(f"stream names must be distinct, got {list(streams)}")
        if batch_window < 0:
            raise ValueError(f"batch_window must be >= 0 seconds, got {batch_window}")
        if workers < 1:
            raise ValueError(f"a pipeline needs at least one worker, got {workers}")
        self._process = process
        self._on_error = on_error
        self.streams = tuple(streams)
        self.drop_frames = drop_frames
        self.batch_window = batch_window
        self._queues: dict[str, deque[Pending[T]]] = {
            s: deque(maxlen=1 if drop_frames else None) for s in self.streams}
        self._counters = {s: _Counters() for s in self.streams}
        self._cond = threading.Condition()
        self._busy = 0
        """Workers processing a batch (or waiting to hand it over)."""
        self._taken = 0
        """Batches taken so far: a batch's number gives its turn to hand over."""
        self._handed = 0
        """Batches handed over (or finished without steps): the number of the batch whose turn it is."""
        self._handoff: list[tuple[Pending[T], Step]] | None = None
        """The steps of the batch in the second stage, until they have all run."""
        self._stopping = False
        self._order = 0
        self.worker_names = (name,) if workers == 1 else tuple(f"{name}-{i}" for i in range(1, workers + 1))
        """The names of the worker threads."""
        self.thread_names = (*self.worker_names, f"{name}-steps")
        """The names of the worker threads, then of the second stage's thread."""
        self._threads = (*(threading.Thread(target=self._run, name=n, daemon=True) for n in self.worker_names),
                         threading.Thread(target=self._run_steps, name=self.thread_names[-1], daemon=True))

    def start(self) -> BatchPipeline[T]:
        """Start the worker threads; returns ``self``."""
        for thread in self._threads:
            thread.start()
        return self

    def submit(self, stream: str, frame: T) -> bool:
        """Queue ``frame`` of ``stream``; False when it replaced that stream's waiting frame (a drop)."""
        with self._cond:
            queue = self._queues.get(stream)
            if queue is None:
                raise ValueError(f"unknown stream {stream!r}; streams: {list(self.streams)}")
            replaced = self.drop_frames and len(queue) == 1
            queue.append(Pending(stream, frame, self._order, time.monotonic()))  # maxlen 1 drops the old one
            self._order += 1
            counters = self._counters[stream]
            counters.received += 1
            if replaced:
                counters.dropped += 1
            self._cond.notify_all()
        return not replaced

    def stats(self, stream: str | None = None) -> PipelineStats:
        """A consistent snapshot of the counters of ``stream``, or of all streams together."""
        with self._cond:
            names = self.streams if stream is None else (stream,)
            counters = [self._counters[s] for s in names]
            return PipelineStats(sum(c.received for c in counters), sum(c.processed for c in counters),
                                 sum(c.dropped for c in counters), sum(c.failed for c in counters),
                                 sum(len(self._queues[s]) for s in names))

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no frame waits or runs in either stage; False if ``timeout`` (seconds) passed first."""
        with self._cond:
            return self._cond.wait_for(
                lambda: not self._waiting() and not self._busy and self._handoff is None, timeout)

    def stop(self, timeout: float | None = 10.0) -> bool:
        """Stop both stages after the batches in progress; waiting frames are discarded.

        Returns False if a worker thread was still busy when ``timeout`` passed.
        """
        with self._cond:
            self._stopping = True
            for queue in self._queues.values():
                queue.clear()
            self._cond.notify_all()
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            if thread.is_alive() and threading.current_thread() is not thread:
                thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in self._threads)

    # ---------------------------------------------------------------- worker (holds the lock where noted)
    def _waiting(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def _wait_for_other_streams(self) -> None:
        """With the lock held: let the oldest waiting frame wait up to batch_window for the other streams."""
        if self.batch_window <= 0:
            return
        # The deadline is fixed now: a stream whose newer frames keep replacing its waiting one
        # must not push it back.
        deadline = min(q[0].arrived for q in self._queues.values() if q) + self.batch_window
        while not self._stopping and not all(self._queues.values()):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._cond.wait(remaining)

    def _take(self) -> list[Pending[T]]:
        """With the lock held: the oldest waiting frame of every stream, oldest first."""
        return sorted((q.popleft() for q in self._queues.values() if q), key=lambda p: p.order)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._stopping or self._waiting())
                if not self._stopping:
                    self._wait_for_other_streams()
                if self._stopping:
                    return
                batch = self._take()
                turn = self._taken
                self._taken += 1
                self._busy += 1
            results = self._run_batch(batch)
            steps = [(item, r) for item, r in zip(batch, results) if callable(r)]
            done = [(item, r) for item, r in zip(batch, results) if not callable(r)]
            self._report(done)
            with self._cond:
                self._count(done)
                self._hand_over(turn, steps)
                self._busy -= 1
                self._cond.notify_all()

    def _hand_over(self, turn: int, steps: list[tuple[Pending[T], Step]]) -> None:
        """With the lock held: give the second stage the ``steps`` of batch number ``turn`` once the batches
        taken before it have been handed over and the second stage is free (then it is the next's turn)."""
        self._cond.wait_for(lambda: self._stopping or (self._handed == turn and (not steps or self._handoff is None)))
        if steps and not self._stopping:
            self._handoff = steps
        self._handed += 1

    def _run_steps(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._stopping or self._handoff is not None)
                if self._stopping:
                    self._handoff = None
                    self._cond.notify_all()
                    return
                steps = self._handoff
            done = [(item, _finish(step)) for item, step in steps]
            self._report(done)
            with self._cond:
                self._count(done)
                self._handoff = None
                self._cond.notify_all()

    def _count(self, done: list[tuple[Pending[T], Outcome]]) -> None:
        """With the lock held: count each frame's outcome."""
        for item, outcome in done:
            counters = self._counters[item.stream]
            if outcome is None:
                counters.processed += 1
            else:
                counters.failed += 1

    def _report(self, done: list[tuple[Pending[T], Outcome]]) -> None:
        if self._on_error is not None:
            for item, outcome in done:
                if outcome is not None:
                    self._on_error(item, outcome)

    def _run_batch(self, batch: list[Pending[T]]) -> list[Outcome | Step]:
        try:
            results = list(self._process(batch))
        except Exception as exc:  # one failing batch must not stop the worker
            results = [exc] * len(batch)
        if len(results) != len(batch):
            error = RuntimeError(f"process returned {len(results)} outcomes for a batch of "
                                 f"{len(batch)} frames")
            results = [error] * len(batch)
        return results


def _finish(step: Step) -> Outcome:
    try:
        return step()
    except Exception as exc:  # one failing frame must not stop the second stage
        return exc
