"""keep_large_buffers: freed megabyte buffers serve the next frame instead of being mapped again."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bialign_ros.large_buffers import TUNABLES_ENV, keep_large_buffers

glibc = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator is Linux's")

# Frames of four 8 MB buffers, allocated and freed together like a frame's outputs, on the main
# thread and on another (threads allocate from their own arenas); prints the page faults they took.
FRAMES = """
import resource, sys, threading
from bialign_ros.large_buffers import keep_large_buffers
kept = keep_large_buffers() if sys.argv[1] == "keep" else False
def frames():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for i in range(20):
        buffers = [bytearray((8 << 20) + i * 4096) for _ in range(4)]
        del buffers
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
faults = []
frames()
thread = threading.Thread(target=frames)
thread.start()
thread.join()
print(kept, *faults)
"""


def page_faults(mode: str, env: dict[str, str] | None = None) -> tuple[bool, list[int]]:
    out = subprocess.run([sys.executable, "-c", FRAMES, mode], check=True, capture_output=True, text=True,
                         env=env).stdout.split()
    return out[0] == "True", [int(n) for n in out[1:]]


@glibc
def test_kept_buffers_are_not_mapped_again_each_frame() -> None:
    kept, faults = page_faults("keep")
    default, default_faults = page_faults("default")
    pages_per_frame = 4 * (8 << 20) // 4096
    assert kept and not default
    # By default every frame maps its buffers again (a fault per page); kept, only the first does.
    assert all(f > 5 * pages_per_frame for f in default_faults), default_faults
    assert all(f < 2 * pages_per_frame for f in faults), faults


@glibc
def test_malloc_tunables_the_user_set_stand(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TUNABLES_ENV, "glibc.malloc.trim_threshold=1048576")
    assert keep_large_buffers() is False
    env = {**os.environ, TUNABLES_ENV: "glibc.malloc.trim_threshold=1048576"}
    assert page_faults("keep", env)[0] is False
