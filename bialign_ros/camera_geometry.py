"""A pinhole camera's intrinsics and its pose over flat ground (pure Python, no ROS).

Frames follow REP 103. The ground frame (``grid_frame``, e.g. ``base_link``) has x forward,
y left, z up, and the ground is its plane z = 0. The camera's optical frame has x right, y down,
z forward (the frame of ``sensor_msgs/CameraInfo``). Pixel (u, v) is column u, row v, and integer
coordinates are pixel centres, as in OpenCV and ``CameraInfo.K``. Lens distortion is not modelled:
images are taken as rectified.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Columns: the optical frame's x (right), y (down) and z (forward) axes in the camera's REP 103
# body frame (x forward, y left, z up).
_BODY_FROM_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


@dataclass(frozen=True)
class CameraIntrinsics:
    """Focal lengths and principal point in pixels (``K = [fx 0 cx; 0 fy cy; 0 0 1]``)."""

    fx: float
    fy: float
    cx: float
    cy: float

    def __post_init__(self) -> None:
        for name in ("fx", "fy"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"camera focal length {name} must be a positive number of pixels, got {value}")
        for name in ("cx", "cy"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"camera principal point {name} must be finite, got {getattr(self, name)}")

    @classmethod
    def from_k(cls, k: Sequence[float]) -> CameraIntrinsics:
        """From the 9 row-major values of ``CameraInfo.k``; ValueError when they are no camera matrix."""
        values = [float(v) for v in k]
        if len(values) != 9:
            raise ValueError(f"camera matrix K needs 9 values, got {len(values)}")
        return cls(fx=values[0], fy=values[4], cx=values[2], cy=values[5])

    def pixel_rays(self, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """Per column and per row, the optical-frame ray direction scaled to unit depth.

        Returns ``((u - cx) / fx`` of shape (width,), ``(v - cy) / fy`` of shape (height,)), float32;
        the ray of pixel (u, v) is ``(ray_x[u], ray_y[v], 1)``.
        """
        ray_x = (np.arange(width, dtype=np.float64) - self.cx) / self.fx
        ray_y = (np.arange(height, dtype=np.float64) - self.cy) / self.fy
        return ray_x.astype(np.float32), ray_y.astype(np.float32)


@dataclass(frozen=True)
class CameraPose:
    """Where the camera stands over the ground, in the ground frame.

    ``height`` is the optical centre's height above the ground in metres (> 0). ``x``, ``y`` (metres)
    and ``yaw`` place it in the ground frame; ``pitch`` and ``roll`` tilt it. Angles are radians,
    applied as REP 103 fixed-axis roll, pitch, yaw (``R = Rz(yaw) Ry(pitch) Rx(roll)``) to a camera
    that first looks along the ground frame's +x with its image rows level:

    - ``yaw`` > 0 turns it left (counter-clockwise seen from above);
    - ``pitch`` > 0 looks down (the horizon moves up in the image);
    - ``roll`` > 0 turns it about its viewing direction, right side down (the horizon in the image
      turns counter-clockwise).
    """

    height: float
    pitch: float = 0.0
    roll: float = 0.0
    x: float = 0.0
    y: float = 0.0
    yaw: float = 0.0

    def __post_init__(self) -> None:
        if not math.isfinite(self.height) or self.height <= 0:
            raise ValueError(
                f"camera_height must be above the ground (> 0 m); got {self.height} m, which puts the "
                "camera on or below the ground"
            )
        for name in ("pitch", "roll", "x", "y", "yaw"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"camera pose {name} must be finite, got {getattr(self, name)}")

    def rotation(self) -> np.ndarray:
        """3x3 rotation taking optical-frame vectors into the ground frame."""
        cr, sr = math.cos(self.roll), math.sin(self.roll)
        cp, sp = math.cos(self.pitch), math.sin(self.pitch)
        cy, sy = math.cos(self.yaw), math.sin(self.yaw)
        rz = np.array([[cy, -sy, 0.0], [sy, cy, 0.0], [0.0, 0.0, 1.0]])
        ry = np.array([[cp, 0.0, sp], [0.0, 1.0, 0.0], [-sp, 0.0, cp]])
        rx = np.array([[1.0, 0.0, 0.0], [0.0, cr, -sr], [0.0, sr, cr]])
        return rz @ ry @ rx @ _BODY_FROM_OPTICAL

    def position(self) -> np.ndarray:
        """The optical centre in the ground frame, (x, y, height)."""
        return np.array([self.x, self.y, self.height])
