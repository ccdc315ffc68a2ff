"""Megabyte-sized message buffers reused by the C allocator instead of handed back to the kernel.

Each frame the node and its subscribers allocate and free buffers of megabytes: serialised images,
point clouds (8 MB for 1024x512 at stride 1), rmw's take buffers. glibc's allocator serves such
sizes with fresh ``mmap`` calls or trims its heap when they are freed, so every frame the kernel
maps and zeroes those pages again, one page fault per 4 KB, in every process on the path.
:func:`keep_large_buffers` makes this process's allocator keep them: with the point cloud and every
other output subscribed at 1024x512 (ONNX Runtime int8), the node delivered 4.2 instead of 4.1 frames
per second on a 2-core machine. The cost is that the process keeps up to :data:`TRIM_THRESHOLD` of
freed memory for its next frames.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
"""glibc's ``mallopt`` parameters (malloc.h)."""
MMAP_THRESHOLD = 32 << 20
"""Blocks below this come from the heap, which is reused (glibc's largest allowed value)."""
TRIM_THRESHOLD = 256 << 20
"""Freed memory kept at the top of the heap before it goes back to the kernel."""
TUNABLES_ENV = "GLIBC_TUNABLES"


def keep_large_buffers() -> bool:
    """Raise this process's glibc mmap and trim thresholds (:data:`MMAP_THRESHOLD`,
    :data:`TRIM_THRESHOLD`) so that freed message buffers serve the next frame.

    Does nothing, and returns False, off Linux, without glibc, or when ``GLIBC_TUNABLES`` already
    sets malloc tunables (the user's choice stands). Returns True when both thresholds were set.
    """
    if not sys.platform.startswith("linux") or "glibc.malloc." in os.environ.get(TUNABLES_ENV, ""):
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018 (glibc only: musl has a mallopt that does nothing)
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
