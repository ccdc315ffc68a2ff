"""FramePipeline without ROS: latest frame wins, evaluation mode, errors and shutdown."""

from __future__ import annotations

import threading
import time

import pytest

from bialign_ros.frame_pipeline import FramePipeline


class SlowWorker:
    """Records the frames it processes; each waits until the test releases it."""

    def __init__(self) -> None:
        self.done: list[int] = []
        self.started = threading.Semaphore(0)
        self.release = threading.Semaphore(0)

    def __call__(self, frame: int) -> None:
        self.started.release()
        assert self.release.acquire(timeout=10)
        self.done.append(frame)


@pytest.fixture
def worker():
    return SlowWorker()


def test_latest_frame_replaces_the_waiting_one_and_counts_the_drop(worker):
    pipe = FramePipeline(worker).start()
    try:
        assert pipe.submit(0)
        assert worker.started.acquire(timeout=5)  # frame 0 is in flight
        assert pipe.submit(1)  # waits
        assert not pipe.submit(2)  # replaces 1
        assert not pipe.submit(3)  # replaces 2
        stats = pipe.stats()
        assert (stats.received, stats.dropped, stats.waiting) == (4, 2, 1)
        for _ in range(2):
            worker.release.release()
        assert pipe.wait_idle(5)
        assert worker.done == [0, 3]
        stats = pipe.stats()
        assert (stats.processed, stats.dropped, stats.failed, stats.waiting) == (2, 2, 0, 0)
    finally:
        for _ in range(4):
            worker.release.release()
        assert pipe.stop(5)


def test_backlog_never_exceeds_one_waiting_frame(worker):
    pipe = FramePipeline(worker).start()
    try:
        pipe.submit(0)
        assert worker.started.acquire(timeout=5)
        for i in range(1, 200):
            pipe.submit(i)
            assert pipe.stats().waiting == 1
        assert pipe.stats().dropped == 198
    finally:
        for _ in range(3):
            worker.release.release()
        assert pipe.stop(5)


def test_evaluation_mode_processes_every_frame_in_order(worker):
    pipe = FramePipeline(worker, drop_frames=False).start()
    try:
        assert all(pipe.submit(i) for i in range(50))
        assert pipe.stats().waiting >= 49
        for _ in range(50):
            worker.release.release()
        assert pipe.wait_idle(10)
        assert worker.done == list(range(50))
        stats = pipe.stats()
        assert (stats.received, stats.processed, stats.dropped) == (50, 50, 0)
    finally:
        assert pipe.stop(5)


def test_a_failing_frame_is_reported_counted_and_the_worker_goes_on():
    seen, errors = [], []

    def process(frame: int) -> None:
        if frame % 2:
            raise ValueError(f"bad frame {frame}")
        seen.append(frame)

    pipe = FramePipeline(process, drop_frames=False, on_error=lambda f, e: errors.append((f, str(e)))).start()
    try:
        for i in range(6):
            pipe.submit(i)
        assert pipe.wait_idle(5)
        assert seen == [0, 2, 4]
        assert errors == [(1, "bad frame 1"), (3, "bad frame 3"), (5, "bad frame 5")]
        assert (pipe.stats().processed, pipe.stats().failed) == (3, 3)
    finally:
        assert pipe.stop(5)


def test_submit_never_waits_for_inference(worker):
    pipe = FramePipeline(worker).start()
    try:
        pipe.submit(0)
        assert worker.started.acquire(timeout=5)
        start = time.perf_counter()
        for i in range(1000):
            pipe.submit(i)
        assert time.perf_counter() - start < 0.5  # the worker is still blocked on frame 0
    finally:
        for _ in range(3):
            worker.release.release()
        assert pipe.stop(5)


def test_stop_discards_waiting_frames_and_ends_the_thread(worker):
    pipe = FramePipeline(worker, drop_frames=False).start()
    for i in range(5):
        pipe.submit(i)
    assert worker.started.acquire(timeout=5)
    threading.Timer(0.2, worker.release.release).start()  # frame 0 ends while stop() waits
    assert pipe.stop(5)
    assert worker.done == [0]
    assert pipe.stats().waiting == 0
    assert not any(t.name == "bialign-inference" and t.is_alive() for t in threading.enumerate())
