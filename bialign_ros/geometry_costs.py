"""What the bird's-eye grid and the labelled points cost per frame, measured on a synthetic street."""

from __future__ import annotations

import time

import numpy as np

from bialign_ros.camera_geometry import CameraIntrinsics, CameraPose
from bialign_ros.classes import CITYSCAPES_NAMES, DEFAULT_FREE_SPACE_CLASSES, DEFAULT_OBSTACLE_CLASSES, class_lookup
from bialign_ros.depth_points import DepthProjector, pack_cloud
from bialign_ros.ground_grid import (
    GridSpec,
    PixelToCellMap,
    grid_from_labels,
    ground_points,
)
from bialign_ros.timing import latency_summary, time_calls

# Cityscapes' camera: focal length 1.105 image widths, 1.22 m above the road, looking slightly down.
FOCAL_PER_WIDTH = 1.105
POSE = CameraPose(height=1.22, pitch=0.04)


def street_frame(height: int, width: int) -> tuple[CameraIntrinsics, np.ndarray, np.ndarray]:
    """A camera, its labels and its depth (32FC1 metres, valid everywhere) of a road with a car on it."""
    focal = FOCAL_PER_WIDTH * width
    intrinsics = CameraIntrinsics(fx=focal, fy=focal, cx=(width - 1) / 2, cy=(height - 1) / 2)
    _, y, depth = ground_points(intrinsics, POSE, height, width)
    names = CITYSCAPES_NAMES
    labels = np.full((height, width), names.index("sky"), dtype=np.uint8)
    on_ground = np.isfinite(depth)
    labels[on_ground] = np.where(np.abs(y[on_ground]) < 5.0, names.index("road"), names.index("sidewalk"))
    labels[~on_ground & (np.abs(np.arange(width) - intrinsics.cx) > width / 4)[None, :]] = names.index("building")
    # A car about 15 m ahead, 1.5 m tall and 2 m wide, drawn as a rectangle standing on the road.
    bottom = int(intrinsics.cy + focal * (POSE.height / 15.0 + np.tan(POSE.pitch)))
    top, half = bottom - int(focal * 1.5 / 15.0), int(focal * 1.0 / 15.0)
    labels[max(top, 0) : bottom, int(intrinsics.cx) - half : int(intrinsics.cx) + half] = names.index("car")
    return intrinsics, labels, np.where(on_ground, depth, 50.0).astype(np.float32)


def measure_geometry_costs(
    height: int = 1024, width: int = 2048, stride: int = 1, iters: int = 20, warmup: int = 3
) -> dict[str, dict[str, float]]:
    """Latency summaries (:func:`bialign_ros.timing.latency_summary`) of the geometry outputs of one frame.

    ``grid``: the occupancy grid of a label image (default 40 x 20 m grid at 0.1 m) with the
    pixel-to-cell map already made; ``grid_map``: making that map, once per camera (``n`` = 1);
    ``points_16UC1`` and ``points_32FC1``: the labelled points of the street's depth image as a
    depth camera gives it (no return from the sky, 10 % of the other pixels dropped at random),
    thinned by ``stride``, packed as PointCloud2 data.
    """
    intrinsics, labels, depth = street_frame(height, width)
    depth = np.where(labels == CITYSCAPES_NAMES.index("sky"), np.nan, depth).astype(np.float32)
    depth[np.random.default_rng(0).random(depth.shape) < 0.1] = np.nan
    confidence = np.full_like(labels, 200)
    start = time.perf_counter()
    cell_map = PixelToCellMap.for_camera(intrinsics, POSE, GridSpec(), (height, width))
    map_seconds = time.perf_counter() - start
    free = class_lookup(DEFAULT_FREE_SPACE_CLASSES, CITYSCAPES_NAMES)
    obstacles = class_lookup(DEFAULT_OBSTACLE_CLASSES, CITYSCAPES_NAMES)
    projector = DepthProjector(intrinsics)
    millimetres = np.round(np.nan_to_num(depth) * 1000).astype(np.uint16)
    return {
        "grid": time_calls(lambda: grid_from_labels(labels, cell_map, free, obstacles), iters, warmup),
        "grid_map": latency_summary([map_seconds]),
        "points_16UC1": time_calls(
            lambda: pack_cloud(projector.points(millimetres, "16UC1", labels, confidence, stride)), iters, warmup
        ),
        "points_32FC1": time_calls(
            lambda: pack_cloud(projector.points(depth, "32FC1", labels, confidence, stride)), iters, warmup
        ),
    }
