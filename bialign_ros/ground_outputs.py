"""The outputs a planner reads in metres: the occupancy grid of the ground and labelled 3D points.

Pure Python (no ROS). :class:`GroundOutputs` holds one camera's state (the pixel-to-cell map and
the depth projector, rebuilt only when the camera's intrinsics, its pose or the grid change) and
turns a segmentation result into the data of ``nav_msgs/OccupancyGrid`` and
``sensor_msgs/PointCloud2``; :mod:`bialign_ros.ground_grid` and :mod:`bialign_ros.depth_points`
hold the geometry. Every problem (no usable camera_info, a camera on or below the ground, depth
of another size or encoding) is a ValueError whose message names it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from bialign_ros.camera_geometry import CameraIntrinsics, CameraPose
from bialign_ros.classes import class_lookup
from bialign_ros.depth_points import DepthProjector, PackedCloud, pack_cloud
from bialign_ros.ground_grid import GridSpec, PixelToCellMap, grid_from_labels
from bialign_ros.outputs import OutputSettings, check_outputs, needs_confidence, needs_edges
from bialign_ros.segmenter import SegmentationResult

GROUND_OUTPUTS: tuple[str, ...] = ("grid", "points")
"""Outputs in metres (names in :data:`bialign_ros.node_interface.OUTPUT_TOPICS`); both need the
confidence map."""


def segmenter_work(outputs: Iterable[str]) -> dict[str, bool]:
    """What ``Segmenter.segment`` must compute besides the labels for ``outputs`` (image and ground
    outputs): ``{"edges": ..., "confidence": ...}``, its keyword arguments. ValueError naming an
    unknown output."""
    outputs = set(outputs)
    images = check_outputs(outputs - set(GROUND_OUTPUTS))
    return {"edges": needs_edges(images), "confidence": needs_confidence(images) or bool(outputs & set(GROUND_OUTPUTS))}


def intrinsics_from_k(k: Sequence[float], source: str = "camera_info") -> CameraIntrinsics:
    """Intrinsics from a row-major ``CameraInfo.K``; ValueError naming ``source`` when K is unusable."""
    if len(k) != 9:
        raise ValueError(f"{source}: K must have 9 entries, got {len(k)}")
    try:
        return CameraIntrinsics.from_k(k)
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from None


class GroundOutputs:
    """One camera's grid and points; reuses the pixel-to-cell map while nothing it depends on changes."""

    def __init__(self, grid: GridSpec, class_names: Sequence[str], obstacle_classes: Sequence[str]) -> None:
        """``obstacle_classes``: names of the model's ``class_names`` (see
        :func:`bialign_ros.classes.obstacle_classes_for`); ValueError naming one it lacks."""
        self.grid_spec = grid
        self.class_names = tuple(class_names)
        self.obstacle_lut = class_lookup(obstacle_classes, class_names)
        self._map: PixelToCellMap | None = None
        self._projector: DepthProjector | None = None

    def occupancy(self, k: Sequence[float], pose: CameraPose, result: SegmentationResult,
                  settings: OutputSettings) -> np.ndarray:
        """The grid (int8, ``(cells along y, cells along x)``, 0 free, 100 occupied, -1 unknown) of
        ``result`` (computed with its confidence), free space as ``settings`` defines it."""
        self._map = PixelToCellMap.for_camera(intrinsics_from_k(k), pose, self.grid_spec,
                                              result.labels.shape, previous=self._map)
        if result.confidence is None:
            raise ValueError("the grid needs the confidence map (segment(..., confidence=True))")
        free_lut = class_lookup(settings.free_space_classes, self.class_names)
        return grid_from_labels(result.labels, self._map, free_lut, self.obstacle_lut, result.confidence,
                                settings.free_space_min_confidence)

    def points(self, k: Sequence[float], depth: np.ndarray, encoding: str, result: SegmentationResult,
               stride: int) -> PackedCloud:
        """The labelled points of a depth image registered to the frame of ``result``."""
        intrinsics = intrinsics_from_k(k)
        if self._projector is None or self._projector.intrinsics != intrinsics:
            self._projector = DepthProjector(intrinsics)
        return pack_cloud(self._projector.points(depth, encoding, result.labels, result.confidence_u8(), stride))
