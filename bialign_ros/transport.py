"""The shipped Fast DDS transport profile for full-resolution images, and how processes adopt it.

Fast DDS reads its profiles file when a process creates its first DDS participant, so
:func:`use_transport_profile` must run before ``rclpy.init``. Fast DDS 3 (Kilted and later)
reads ``FASTDDS_DEFAULT_PROFILES_FILE``; Fast DDS 2 (Humble, Jazzy) reads only
``FASTRTPS_DEFAULT_PROFILES_FILE``, which Fast DDS 3 reports as deprecated, so exactly one is
set. A value the user already set in either (even an empty one) is left alone, and other
middlewares are not touched.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping
from importlib import metadata
from pathlib import Path

from bialign_ros.large_buffers import keep_large_buffers

PACKAGE = "bialign_ros"
PROFILE_NAME = "fastdds_large_frames.xml"
PROFILE_ENV = "FASTDDS_DEFAULT_PROFILES_FILE"
LEGACY_PROFILE_ENV = "FASTRTPS_DEFAULT_PROFILES_FILE"
FASTDDS2_DISTROS = ("humble", "iron", "jazzy")


def _share_dirs() -> list[Path]:
    dirs = []
    if os.environ.get("AMENT_PREFIX_PATH"):
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

        try:
            dirs.append(Path(get_package_share_directory(PACKAGE)))
        except PackageNotFoundError:
            pass
    dirs.append(Path(sys.prefix) / "share" / PACKAGE)  # pip install of the data files
    return dirs


def transport_profile_path() -> Path:
    """Where the shipped profile is: source tree, ROS install (share/) or pip data files."""
    candidates = [Path(__file__).resolve().parents[1] / "config" / PROFILE_NAME]
    for path in candidates:
        if path.is_file():
            return path
    candidates += [d / "config" / PROFILE_NAME for d in _share_dirs()]
    for path in candidates[1:]:
        if path.is_file():
            return path
    raise FileNotFoundError(f"{PROFILE_NAME} not found; looked in {', '.join(map(str, candidates))}")


def uses_fastdds(env: MutableMapping[str, str]) -> bool:
    """True when the ROS middleware selected by ``env`` is Fast DDS (the default)."""
    return "fastrtps" in env.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")


def profile_env_var(env: MutableMapping[str, str]) -> str:
    """The variable this machine's Fast DDS reads: by ROS_DISTRO, else by the installed wheels."""
    distro = env.get("ROS_DISTRO")
    if distro:
        return LEGACY_PROFILE_ENV if distro in FASTDDS2_DISTROS else PROFILE_ENV
    try:
        metadata.version("ros-fastdds")
    except metadata.PackageNotFoundError:
        try:
            metadata.version("ros-fastrtps")
        except metadata.PackageNotFoundError:
            return PROFILE_ENV
        return LEGACY_PROFILE_ENV
    return PROFILE_ENV


def use_transport_profile(env: MutableMapping[str, str] | None = None) -> Path | None:
    """Point ``env`` (default: this process) at the shipped profile unless it is set or not Fast DDS.

    Returns the profile path that was set, or None when ``env`` was left unchanged.
    """
    env = os.environ if env is None else env
    if PROFILE_ENV in env or LEGACY_PROFILE_ENV in env or not uses_fastdds(env):
        return None
    path = transport_profile_path()
    env[profile_env_var(env)] = str(path)
    return path


def prepare_for_large_frames() -> Path | None:
    """What each process that exchanges full-resolution images does before ``rclpy.init``: keep its
    megabyte buffers for reuse (:func:`~bialign_ros.large_buffers.keep_large_buffers`) and adopt the
    transport profile (:func:`use_transport_profile`, whose result it returns)."""
    keep_large_buffers()
    return use_transport_profile()
