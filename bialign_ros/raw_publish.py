"""Publishing serialised messages without holding Python's GIL.

rclpy's ``Publisher.publish(bytes)`` copies the bytes into a C++ string and hands them to the
middleware with the GIL held, so while a 1.5 MB colour image is copied and written to DDS no other
thread of the process runs Python (in the node, the inference thread dispatches the model's
operators from Python, the executor takes the camera's frames). :func:`publish_serialized`
calls ``rcl_publish_serialized_message`` through ctypes, which releases the GIL for the call, on
the array :mod:`bialign_ros.codec.cdr` serialises into, without copying it again. Where ``librcl``
cannot be loaded it falls back to rclpy's ``publish(bytes)``, which sends the same bytes.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

LOG = logging.getLogger(__name__)


class _Allocator(ctypes.Structure):
    """``rcutils_allocator_t`` (unused when publishing, present for the layout)."""

    _fields_ = [("allocate", ctypes.c_void_p), ("deallocate", ctypes.c_void_p), ("reallocate", ctypes.c_void_p),
                ("zero_allocate", ctypes.c_void_p), ("state", ctypes.c_void_p)]


class _SerializedMessage(ctypes.Structure):
    """``rcl_serialized_message_t`` (``rcutils_uint8_array_t``)."""

    _fields_ = [("buffer", ctypes.c_void_p), ("buffer_length", ctypes.c_size_t),
                ("buffer_capacity", ctypes.c_size_t), ("allocator", _Allocator)]


class _ErrorString(ctypes.Structure):
    """``rcutils_error_string_t``."""

    _fields_ = [("str", ctypes.c_char * 1024)]


def _loaded_library(name: str) -> str:
    """The path of the shared library ``lib<name>.so`` this process has loaded (rclpy loads rcl's), else
    the bare file name for the dynamic linker to find."""
    pattern = re.compile(rf"\s(/\S*/lib{re.escape(name)}\.so[.\d]*)$")
    try:
        for line in Path("/proc/self/maps").read_text().splitlines():
            match = pattern.search(line)
            if match:
                return match.group(1)
    except OSError:
        pass
    return f"lib{name}.so"


@functools.cache
def _rcl() -> tuple[Any, Any, Any] | None:
    """``rcl_publish_serialized_message`` and rcutils' error functions, or None where they cannot be loaded."""
    try:
        import rclpy.impl.implementation_singleton  # noqa: F401  (loads librcl and librcutils into the process)

        publish = ctypes.CDLL(_loaded_library("rcl")).rcl_publish_serialized_message
        rcutils = ctypes.CDLL(_loaded_library("rcutils"))
        error, reset = rcutils.rcutils_get_error_string, rcutils.rcutils_reset_error
    except (ImportError, OSError, AttributeError) as exc:  # AttributeError: a function missing
        LOG.info("publishing through rclpy (librcl not usable: %s)", exc)
        return None
    publish.argtypes = (ctypes.c_void_p, ctypes.POINTER(_SerializedMessage), ctypes.c_void_p)
    publish.restype = ctypes.c_int32
    error.argtypes = ()
    error.restype = _ErrorString
    reset.argtypes = ()
    reset.restype = None
    return publish, error, reset


def publish_serialized(publisher: Any, data: np.ndarray) -> None:
    """Send the serialised message ``data`` (C-contiguous uint8, e.g. ``np.frombuffer`` of a bag's bytes)
    on the rclpy ``publisher``, releasing the GIL while rcl and the middleware take it.

    A lifecycle publisher that is not activated sends nothing, as its ``publish`` does.
    """
    if not getattr(publisher, "is_activated", True):
        return
    functions = _rcl()
    if functions is None:
        publisher.publish(data.tobytes())
        return
    publish, error, reset = functions
    message = _SerializedMessage(data.ctypes.data, data.nbytes, data.nbytes)
    handle = publisher.handle
    with handle:  # keeps the publisher from being destroyed during the call
        ret = publish(handle.pointer, ctypes.byref(message), None)
    if ret != 0:
        text = error().str.decode(errors="replace")
        reset()
        raise RuntimeError(f"publishing on {publisher.topic_name} failed ({ret}): {text}")
