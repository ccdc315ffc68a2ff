"""BatchPipeline without ROS: one slot per camera, batches, the batch window, errors per frame."""

from __future__ import annotations

import threading
import time
from functools import partial

import pytest

from bialign_ros.batch_pipeline import BatchPipeline, Pending, PipelineStats, group_by

CAMERAS = ("front", "left")


class GatedWorker:
    """Records each batch as (stream, frame) pairs; each batch waits until the test releases it."""

    def __init__(self, fail: set[int] | None = None) -> None:
        self.batches: list[list[tuple[str, int]]] = []
        self.started = threading.Semaphore(0)
        self.release = threading.Semaphore(0)
        self.fail = fail or set()

    def __call__(self, batch: list[Pending[int]]) -> list[Exception | None]:
        self.started.release()
        assert self.release.acquire(timeout=10)
        self.batches.append([(p.stream, p.frame) for p in batch])
        return [ValueError(f"bad frame {p.frame}") if p.frame in self.fail else None for p in batch]

    def free(self, n: int = 10) -> None:
        for _ in range(n):
            self.release.release()


@pytest.fixture
def worker():
    w = GatedWorker()
    yield w
    w.free(100)


def _wait_until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def _busy(pipe: BatchPipeline, worker: GatedWorker, stream: str = "front") -> None:
    """Put frame -1 in flight, so that what the test submits next waits."""
    pipe.submit(stream, -1)
    assert worker.started.acquire(timeout=5)


def test_frames_of_every_camera_waiting_together_form_one_batch_in_arrival_order(worker):
    pipe = BatchPipeline(worker, CAMERAS).start()
    try:
        _busy(pipe, worker)
        assert pipe.submit("left", 1) and pipe.submit("front", 2)
        assert pipe.stats().waiting == 2
        worker.free(2)
        assert pipe.wait_idle(5)
        assert worker.batches == [[("front", -1)], [("left", 1), ("front", 2)]]
        assert (pipe.stats().processed, pipe.stats().waiting) == (3, 0)
    finally:
        assert pipe.stop(5)


def test_latest_frame_wins_per_camera_and_drops_are_counted_per_camera(worker):
    pipe = BatchPipeline(worker, CAMERAS).start()
    try:
        _busy(pipe, worker)
        assert pipe.submit("front", 1)
        assert not pipe.submit("front", 2)  # replaces front 1
        assert pipe.submit("left", 10)  # left's own slot: front's frame stays
        assert not pipe.submit("front", 3)
        front, left = pipe.stats("front"), pipe.stats("left")
        assert (front.received, front.dropped, front.waiting) == (4, 2, 1)
        assert (left.received, left.dropped, left.waiting) == (1, 0, 1)
        worker.free(2)
        assert pipe.wait_idle(5)
        assert worker.batches[1] == [("left", 10), ("front", 3)]
        total = pipe.stats()
        assert (total.received, total.processed, total.dropped, total.waiting) == (5, 3, 2, 0)
    finally:
        assert pipe.stop(5)


def test_evaluation_mode_keeps_every_frame_and_batches_one_frame_per_camera_in_order(worker):
    pipe = BatchPipeline(worker, CAMERAS, drop_frames=False).start()
    try:
        _busy(pipe, worker)
        for i in range(3):
            assert pipe.submit("front", i)
        assert pipe.submit("left", 100)
        worker.free(10)
        assert pipe.wait_idle(5)
        assert worker.batches[1:] == [[("front", 0), ("left", 100)], [("front", 1)], [("front", 2)]]
        assert (pipe.stats().processed, pipe.stats().dropped) == (5, 0)
    finally:
        assert pipe.stop(5)


def test_an_idle_worker_waits_up_to_the_window_for_the_other_camera():
    batches = []
    pipe = BatchPipeline(lambda b: batches.append([p.frame for p in b]) or [None] * len(b), CAMERAS,
                         batch_window=0.4).start()
    try:
        pipe.submit("front", 1)
        time.sleep(0.1)
        pipe.submit("left", 2)
        assert pipe.wait_idle(5)
        assert batches == [[1, 2]]
        start = time.monotonic()
        pipe.submit("front", 3)  # left stays silent: front runs alone once the window has passed
        assert pipe.wait_idle(5)
        waited = time.monotonic() - start
        assert batches[-1] == [3] and 0.35 < waited < 1.5
    finally:
        assert pipe.stop(5)


@pytest.mark.parametrize("streams", [CAMERAS, ("",)], ids=["every-camera-has-a-frame", "single-camera"])
def test_no_wait_once_every_camera_has_a_frame(streams):
    done = threading.Event()
    pipe = BatchPipeline(lambda b: done.set() or [None] * len(b), streams, batch_window=1.0).start()
    try:
        start = time.monotonic()
        for i, stream in enumerate(streams):
            pipe.submit(stream, i)
        assert done.wait(5)
        assert time.monotonic() - start < 0.5
    finally:
        assert pipe.stop(5)


def test_a_camera_flooding_its_slot_does_not_extend_the_window():
    batches = []
    pipe = BatchPipeline(lambda b: batches.append(b) or [None] * len(b), CAMERAS, batch_window=0.3).start()
    try:
        start = time.monotonic()
        while not batches and time.monotonic() - start < 3:
            pipe.submit("front", 0)  # each newer frame replaces the waiting one
            time.sleep(0.01)
        assert batches and time.monotonic() - start < 0.6
    finally:
        assert pipe.stop(5)


def test_a_bad_frame_fails_alone_and_the_other_camera_frame_is_processed():
    errors = []
    worker = GatedWorker(fail={1})
    worker.free(100)
    pipe = BatchPipeline(worker, CAMERAS, batch_window=1.0,
                         on_error=lambda p, e: errors.append((p.stream, str(e)))).start()
    try:
        pipe.submit("front", 1)
        pipe.submit("left", 2)
        assert pipe.wait_idle(5)
        assert worker.batches == [[("front", 1), ("left", 2)]]
        assert errors == [("front", "bad frame 1")]
        front, left = pipe.stats("front"), pipe.stats("left")
        assert (front.failed, left.processed, left.failed) == (1, 1, 0)
    finally:
        assert pipe.stop(5)


def test_a_raising_batch_fails_each_of_its_frames_and_the_worker_goes_on():
    errors, calls = [], []

    def process(batch):
        calls.append(len(batch))
        if len(calls) == 1:
            raise RuntimeError("backend crashed")
        return [None] * len(batch)

    pipe = BatchPipeline(process, CAMERAS, batch_window=1.0,
                         on_error=lambda p, e: errors.append(p.frame)).start()
    try:
        pipe.submit("front", 1)
        pipe.submit("left", 2)
        assert pipe.wait_idle(5)
        pipe.submit("left", 3)
        pipe.submit("front", 4)
        assert pipe.wait_idle(5)
        assert sorted(errors) == [1, 2] and calls == [2, 2]
        assert (pipe.stats().failed, pipe.stats().processed) == (2, 2)
    finally:
        assert pipe.stop(5)


def test_a_wrong_number_of_outcomes_fails_the_batch_with_a_clear_error():
    errors = []
    pipe = BatchPipeline(lambda b: [], CAMERAS, on_error=lambda p, e: errors.append(str(e))).start()
    try:
        pipe.submit("front", 1)
        assert pipe.wait_idle(5)
        assert errors == ["process returned 0 outcomes for a batch of 1 frames"]
    finally:
        assert pipe.stop(5)


def test_stop_during_the_window_ends_the_worker_and_discards_waiting_frames():
    pipe = BatchPipeline(lambda b: [None] * len(b), CAMERAS, batch_window=1.0, name="window-test").start()
    pipe.submit("front", 1)
    time.sleep(0.05)
    start = time.monotonic()
    assert pipe.stop(5)
    assert time.monotonic() - start < 0.5
    assert pipe.stats().waiting == 0 and pipe.stats().processed == 0
    assert not any(t.name == "window-test" and t.is_alive() for t in threading.enumerate())


def test_bad_configuration_and_unknown_streams_are_refused_by_name():
    with pytest.raises(ValueError, match="at least one stream"):
        BatchPipeline(lambda b: [], ())
    with pytest.raises(ValueError, match="distinct.*'front', 'front'"):
        BatchPipeline(lambda b: [], ("front", "front"))
    with pytest.raises(ValueError, match="batch_window"):
        BatchPipeline(lambda b: [], CAMERAS, batch_window=-0.1)
    with pytest.raises(ValueError, match="at least one worker, got 0"):
        BatchPipeline(lambda b: [], CAMERAS, workers=0)
    pipe = BatchPipeline(lambda b: [None] * len(b), CAMERAS)
    with pytest.raises(ValueError, match="unknown stream 'rear'"):
        pipe.submit("rear", 1)


def test_group_by_keeps_first_appearance_order():
    items = [(0, (4, 6)), (1, (2, 2)), (2, (4, 6)), (3, (8, 8))]
    assert group_by(items, key=lambda i: i[1]) == [[(0, (4, 6)), (2, (4, 6))], [(1, (2, 2))], [(3, (8, 8))]]
    assert group_by([], key=lambda i: i) == []


def test_backlog_never_exceeds_one_waiting_frame_per_camera(worker):
    pipe = BatchPipeline(worker, CAMERAS).start()
    try:
        _busy(pipe, worker)
        for i in range(1, 200):
            pipe.submit("front", i)
            pipe.submit("left", -i)
            assert pipe.stats().waiting == 2
        assert pipe.stats("front").dropped == 198 and pipe.stats("left").dropped == 198
    finally:
        worker.free(3)
        assert pipe.stop(5)


def test_submit_never_waits_for_inference(worker):
    pipe = BatchPipeline(worker, CAMERAS).start()
    try:
        _busy(pipe, worker)
        start = time.perf_counter()
        for i in range(1000):
            pipe.submit("front", i)
        assert time.perf_counter() - start < 0.5  # the worker is still blocked on frame -1
    finally:
        worker.free(3)
        assert pipe.stop(5)


def test_steps_run_on_a_second_thread_while_the_worker_takes_the_next_batch():
    """A frame's step (its publishing) overlaps the next frame's processing; one batch per stage."""
    processed, finished, threads = [], [], set()
    gate = threading.Event()

    def step(frame):
        threads.add(threading.current_thread().name)
        if frame == 1:
            assert gate.wait(10)
        finished.append(frame)

    def process(batch):
        threads.add(threading.current_thread().name)
        processed.append([p.frame for p in batch])
        return [partial(step, p.frame) for p in batch]

    pipe = BatchPipeline(process, ("front",), name="stages").start()
    try:
        pipe.submit("front", 1)
        _wait_until(lambda: processed == [[1]])
        pipe.submit("front", 2)  # processed while frame 1's step is still running
        _wait_until(lambda: processed == [[1], [2]])
        pipe.submit("front", 3)  # waits: frame 2 waits for the second stage, which holds frame 1
        time.sleep(0.3)
        assert processed == [[1], [2]] and finished == []
        assert not pipe.wait_idle(0.05)
        gate.set()
        assert pipe.wait_idle(5)
        assert processed == [[1], [2], [3]] and finished == [1, 2, 3]
        assert threads == {"stages", "stages-steps"}
        assert pipe.stats() == PipelineStats(received=3, processed=3, dropped=0, failed=0, waiting=0)
    finally:
        gate.set()
        assert pipe.stop(5)


def test_workers_process_frames_at_once_and_hand_them_over_in_the_order_taken():
    """Two workers: frame 2 is taken while frame 1 is processed and finishes first, yet its step runs
    after frame 1's (a camera's frames come out in stamp order); a third frame waits for a free worker."""
    gates = {1: threading.Event(), 2: threading.Event(), 3: threading.Event()}
    running, finished, threads = [], [], {}

    def process(batch):
        frame = batch[0].frame
        running.append(frame)
        threads[frame] = threading.current_thread().name
        assert gates[frame].wait(10)
        return [partial(finished.append, frame)]

    pipe = BatchPipeline(process, ("front",), name="streams", workers=2).start()
    try:
        assert pipe.thread_names == ("streams-1", "streams-2", "streams-steps")
        pipe.submit("front", 1)
        _wait_until(lambda: running == [1])
        pipe.submit("front", 2)
        _wait_until(lambda: running == [1, 2])  # both in flight
        pipe.submit("front", 3)
        gates[2].set()
        time.sleep(0.3)
        assert finished == [] and running == [1, 2]  # frame 2 waits for frame 1's turn, holding its worker
        gates[1].set()
        _wait_until(lambda: finished == [1, 2] and running == [1, 2, 3])
        gates[3].set()
        assert pipe.wait_idle(5)
        assert finished == [1, 2, 3]
        assert threads[1] != threads[2] and {threads[1], threads[2]} == {"streams-1", "streams-2"}
        assert pipe.stats() == PipelineStats(received=3, processed=3, dropped=0, failed=0, waiting=0)
    finally:
        for gate in gates.values():
            gate.set()
        assert pipe.stop(5)


def test_a_failed_batch_passes_its_turn_to_the_next():
    """A batch without steps (its frames failed) still hands over in its turn: later batches are not held."""
    gate = threading.Event()
    finished, errors = [], []

    def process(batch):
        frame = batch[0].frame
        if frame == 1:
            assert gate.wait(10)
            return [ValueError("bad frame 1")]
        return [partial(finished.append, frame)]

    pipe = BatchPipeline(process, ("front",), workers=2, on_error=lambda p, e: errors.append(p.frame)).start()
    try:
        pipe.submit("front", 1)
        _wait_until(lambda: pipe.stats().waiting == 0)
        pipe.submit("front", 2)
        time.sleep(0.2)
        assert finished == []  # its turn comes after frame 1's
        gate.set()
        assert pipe.wait_idle(5)
        assert (finished, errors) == ([2], [1])
    finally:
        gate.set()
        assert pipe.stop(5)


def test_stop_ends_every_worker_waiting_for_its_turn():
    gate = threading.Event()

    def process(batch):
        if batch[0].frame == 1:
            gate.wait(0.5)
        return [lambda: None]

    pipe = BatchPipeline(process, ("front",), workers=3).start()
    pipe.submit("front", 1)
    _wait_until(lambda: pipe.stats().waiting == 0)
    pipe.submit("front", 2)  # done at once, waits for frame 1's turn
    assert pipe.stop(5)


def test_a_failing_step_fails_its_frame_alone():
    errors = []

    def step(frame):
        if frame == 2:
            raise ValueError("cannot publish frame 2")
        return None

    pipe = BatchPipeline(lambda b: [partial(step, p.frame) for p in b], CAMERAS, batch_window=1.0,
                         on_error=lambda p, e: errors.append((p.frame, str(e)))).start()
    try:
        pipe.submit("front", 1)
        pipe.submit("left", 2)
        assert pipe.wait_idle(5)
        assert errors == [(2, "cannot publish frame 2")]
        assert (pipe.stats("front").processed, pipe.stats("left").failed) == (1, 1)
    finally:
        assert pipe.stop(5)


def test_stop_ends_both_stages_while_a_step_runs():
    gate = threading.Event()
    started = threading.Event()

    def step():
        started.set()
        gate.wait(0.5)

    pipe = BatchPipeline(lambda b: [step] * len(b), ("front",)).start()
    pipe.submit("front", 1)
    assert started.wait(5)
    pipe.submit("front", 2)  # processed, then waits for the second stage
    assert pipe.stop(5)
    assert pipe.stats().processed <= 1
