"""Pinhole camera of the synthetic street scenes: pose, projection and near-plane clipping.

World coordinates are metric: x to the right of the street, y up, z along the street. Camera
coordinates follow OpenCV (x right, y down, z forward), so image rows grow downwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from bialign_ros.camera_geometry import CameraPose

NEAR_PLANE = 0.3
"""Polygons are clipped at this camera depth (metres) before projection."""

SUBPIXEL_BITS = 4
"""Fractional bits of the fixed-point vertices handed to ``cv2.fillPoly``."""


@dataclass(frozen=True)
class Camera:
    """A pinhole camera with square pixels, placed in the street by position and yaw/pitch/roll.

    ``yaw`` turns right, ``pitch`` looks down and ``roll`` turns the image clockwise, in radians.
    """

    width: int
    height: int
    focal: float
    cx: float
    cy: float
    position: tuple[float, float, float]
    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0

    @cached_property
    def rotation(self) -> np.ndarray:
        """3x3 rotation whose rows are the camera's right, down and forward axes in world space."""
        cy_, sy = np.cos(self.yaw), np.sin(self.yaw)
        cp, sp = np.cos(self.pitch), np.sin(self.pitch)
        forward = np.array([sy * cp, -sp, cy_ * cp])
        right = np.array([cy_, 0.0, -sy])
        down = np.cross(right, forward)
        cr, sr = np.cos(self.roll), np.sin(self.roll)
        return np.stack([cr * right + sr * down, -sr * right + cr * down, forward])

    @property
    def k(self) -> list[float]:
        """The intrinsics as ``sensor_msgs/CameraInfo.K`` (row-major, square pixels)."""
        return [self.focal, 0.0, self.cx, 0.0, self.focal, self.cy, 0.0, 0.0, 1.0]

    def pose_over_ground(self) -> CameraPose:
        """The camera's pose over the street as the node's ``camera_*`` parameters give it (REP 103,
        the ground frame under the camera): the street's y is up, and its yaw turns right where REP
        103's turns left; pitch (looking down) and roll (right side down) agree."""
        return CameraPose(height=float(self.position[1]), pitch=self.pitch, roll=self.roll, yaw=-self.yaw)

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """Transform (N, 3) world points into camera coordinates."""
        return (np.asarray(points, dtype=np.float64) - np.asarray(self.position)) @ self.rotation.T

    def depth_of(self, point: np.ndarray) -> float:
        """Camera-z depth of one world point (negative behind the camera)."""
        return float(self.to_camera(np.asarray(point, dtype=np.float64)[None])[0, 2])

    def project_polygons(self, polygons: list[np.ndarray]) -> list[np.ndarray | None]:
        """Project world-space polygons to fixed-point pixel polygons for ``cv2.fillPoly``.

        All vertices are transformed in one batch; polygons crossing the near plane are clipped
        and those entirely behind it become None. Vertices carry :data:`SUBPIXEL_BITS` fractional
        bits.
        """
        if not polygons:
            return []
        counts = np.fromiter((len(p) for p in polygons), dtype=np.int64, count=len(polygons))
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        cam = self.to_camera(np.concatenate(polygons))
        z = cam[:, 2]
        z_min = np.minimum.reduceat(z, starts)
        z_max = np.maximum.reduceat(z, starts)
        scale = self.focal * (1 << SUBPIXEL_BITS)
        centre = np.array([self.cx, self.cy]) * (1 << SUBPIXEL_BITS)
        safe_z = np.maximum(z, NEAR_PLANE)[:, None]
        fixed = np.round(cam[:, :2] / safe_z * scale + centre).astype(np.int32)
        out: list[np.ndarray | None] = np.split(fixed, starts[1:])
        for i in np.nonzero(z_min < NEAR_PLANE)[0]:
            if z_max[i] < NEAR_PLANE:
                out[i] = None
                continue
            poly = clip_near(cam[starts[i] : starts[i] + counts[i]])
            if len(poly) < 3:
                out[i] = None
                continue
            out[i] = np.round(poly[:, :2] / poly[:, 2:3] * scale + centre).astype(np.int32)
        return out

    def ray_y_coefficients(self) -> tuple[float, float, float]:
        """Coefficients (a, b, c) with world-y of the pixel ray (u, v) = a*u + b*v + c.

        The ray is scaled to unit camera depth, so a ground plane ``h`` metres below the camera
        is at camera depth ``h / -(a*u + b*v + c)`` where that value is positive.
        """
        r = self.rotation
        a = r[0, 1] / self.focal
        b = r[1, 1] / self.focal
        c = r[2, 1] - a * self.cx - b * self.cy
        return float(a), float(b), float(c)


def clip_near(poly: np.ndarray, near: float = NEAR_PLANE) -> np.ndarray:
    """Clip a camera-space polygon (N, 3) to ``z >= near`` (Sutherland-Hodgman, one plane)."""
    result = []
    n = len(poly)
    for i in range(n):
        cur, nxt = poly[i], poly[(i + 1) % n]
        cur_in, nxt_in = cur[2] >= near, nxt[2] >= near
        if cur_in:
            result.append(cur)
        if cur_in != nxt_in:
            s = (near - cur[2]) / (nxt[2] - cur[2])
            result.append(cur + s * (nxt - cur))
    return np.array(result) if result else np.zeros((0, 3))
