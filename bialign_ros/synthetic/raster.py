"""Rasterisation of world-space polygons into the surface map, plus the shapes objects use.

Every object draws itself through a :class:`Painter`: it creates materials (class, colour,
texture, shading by face normal) and fills polygons with them, far objects first. Polygons are
filled without antialiasing, so each pixel holds exactly one material and thus one class.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from bialign_ros.classes import CITYSCAPES_CLASSES, IGNORE_INDEX
from bialign_ros.synthetic.camera import SUBPIXEL_BITS, Camera
from bialign_ros.synthetic.textures import MaterialTable, SceneLook


class Painter:
    """Surface map of one frame: material index per pixel, plus a ground-shadow mask.

    Fills are recorded in drawing order and rasterised together by :meth:`rasterise`, which
    projects all vertices in one batch.
    """

    def __init__(self, camera: Camera, look: SceneLook) -> None:
        self.camera = camera
        self.look = look
        self.camera_position = np.asarray(camera.position, dtype=np.float64)
        self.surfaces = np.zeros((camera.height, camera.width), dtype=np.uint16)
        self.shadows = np.zeros((camera.height, camera.width), dtype=np.uint8)
        self.table = MaterialTable()
        self._instance_counts: dict[int, int] = defaultdict(int)
        self._polygons: list[np.ndarray] = []
        self._groups: list[tuple[int, int, int]] = []
        self._shadow_polygons: list[np.ndarray] = []

    def pixels(self, metres: float, depth: float) -> float:
        """Approximate image size in pixels of ``metres`` seen at camera depth ``depth``."""
        return self.camera.focal * metres / max(depth, 0.3)

    def new_instance(self, train_id: int) -> int:
        """Return a fresh Cityscapes instance ID for an object of class ``train_id``."""
        label_id = CITYSCAPES_CLASSES[train_id].label_id
        self._instance_counts[train_id] += 1
        return label_id * 1000 + self._instance_counts[train_id] - 1

    def material(
        self,
        train_id: int,
        color: np.ndarray | tuple[float, float, float],
        texture: tuple[float, float, float],
        *,
        normal: tuple[float, float, float] | None = None,
        depth: float = 1e4,
        instance: int | None = None,
        ground: bool = False,
    ) -> int:
        """Create a material shaded for a surface facing ``normal``; ``depth`` (metres) sets its haze."""
        if instance is None:
            instance = 0 if train_id == IGNORE_INDEX else CITYSCAPES_CLASSES[train_id].label_id
        shade = self.look.shade(normal)
        return self.table.add(
            train_id,
            instance,
            (color[0] * shade, color[1] * shade, color[2] * shade),
            texture,
            max(depth, 0.0),
            ground,
        )

    def fill(self, polygons: list[np.ndarray], material: int) -> None:
        """Fill world-space polygons (each (N, 3)) one by one, so overlaps stay filled."""
        for poly in polygons:
            self._groups.append((material, len(self._polygons), len(self._polygons) + 1))
            self._polygons.append(poly)

    def fill_disjoint(self, polygons: list[np.ndarray], material: int) -> None:
        """Fill polygons that do not overlap each other in one call (windows, stripes, bars)."""
        if polygons:
            self._groups.append((material, len(self._polygons), len(self._polygons) + len(polygons)))
            self._polygons.extend(polygons)

    def shadow(self, polygons: list[np.ndarray]) -> None:
        """Mark the ground covered by shadow polygons; only ground materials are darkened."""
        self._shadow_polygons.extend(polygons)

    def rasterise(self) -> None:
        """Draw every recorded fill, in order, into the surface map and the shadow mask."""
        flags = {"lineType": cv2.LINE_8, "shift": SUBPIXEL_BITS}
        projected = self.camera.project_polygons(self._polygons)
        for material, start, stop in self._groups:
            polys = [p for p in projected[start:stop] if p is not None]
            if polys:
                cv2.fillPoly(self.surfaces, polys, material, **flags)
        for poly in self.camera.project_polygons(self._shadow_polygons):
            if poly is not None:
                cv2.fillPoly(self.shadows, [poly], 1, **flags)
        self._polygons, self._groups, self._shadow_polygons = [], [], []

    def fill_screen(self, points_uv: np.ndarray, material: int) -> None:
        """Fill a polygon given directly in pixel coordinates, on top of everything rasterised."""
        poly = np.round(np.asarray(points_uv) * (1 << SUBPIXEL_BITS)).astype(np.int32)
        cv2.fillPoly(self.surfaces, [poly], material, lineType=cv2.LINE_8, shift=SUBPIXEL_BITS)


@dataclass(frozen=True)
class Face:
    """A planar rectangle of a box: ``origin + s * s_axis + t * t_axis`` for s, t in [0, size]."""

    normal: tuple[float, float, float]
    origin: np.ndarray
    s_axis: np.ndarray
    t_axis: np.ndarray
    s_size: float
    t_size: float

    def polygon(self) -> np.ndarray:
        """The whole face as a (4, 3) polygon."""
        return self.rect(0.0, self.s_size, 0.0, self.t_size)

    def rect(self, s0: float, s1: float, t0: float, t1: float) -> np.ndarray:
        """A rectangle in face coordinates as a (4, 3) polygon."""
        return self.rects(np.array([[s0, s1, t0, t1]]))[0]

    def rects(self, bounds: np.ndarray) -> list[np.ndarray]:
        """Many rectangles (rows of s0, s1, t0, t1) as (4, 3) polygons."""
        bounds = np.asarray(bounds, dtype=np.float64).reshape(-1, 4)
        s = bounds[:, [0, 1, 1, 0]]
        t = bounds[:, [2, 2, 3, 3]]
        pts = self.origin + s[..., None] * self.s_axis + t[..., None] * self.t_axis
        return list(pts)


@dataclass(frozen=True)
class Box:
    """Axis-aligned box in world coordinates."""

    x0: float
    x1: float
    y0: float
    y1: float
    z0: float
    z1: float

    def visible_faces(self, eye: np.ndarray) -> list[Face]:
        """Faces turned towards ``eye``: vertical faces run s horizontally and t upwards."""
        ex, ey, ez = eye
        dx, dy, dz = self.x1 - self.x0, self.y1 - self.y0, self.z1 - self.z0
        faces = []
        unit_x, unit_y, unit_z = np.eye(3)
        if ez < self.z0:
            faces.append(
                Face((0.0, 0.0, -1.0), np.array([self.x0, self.y0, self.z0]), unit_x, unit_y, dx, dy)
            )
        elif ez > self.z1:
            faces.append(Face((0.0, 0.0, 1.0), np.array([self.x0, self.y0, self.z1]), unit_x, unit_y, dx, dy))
        if ex < self.x0:
            faces.append(
                Face((-1.0, 0.0, 0.0), np.array([self.x0, self.y0, self.z0]), unit_z, unit_y, dz, dy)
            )
        elif ex > self.x1:
            faces.append(Face((1.0, 0.0, 0.0), np.array([self.x1, self.y0, self.z0]), unit_z, unit_y, dz, dy))
        if ey > self.y1:
            faces.append(Face((0.0, 1.0, 0.0), np.array([self.x0, self.y1, self.z0]), unit_x, unit_z, dx, dz))
        return faces

    def footprint_distance(self, eye: np.ndarray) -> float:
        """Horizontal distance from ``eye`` to the nearest point of the box's footprint."""
        px = min(max(eye[0], self.x0), self.x1)
        pz = min(max(eye[2], self.z0), self.z1)
        return float(np.hypot(eye[0] - px, eye[2] - pz))


def ground_rect(x0: float, x1: float, z0: float, z1: float, y: float = 0.0) -> np.ndarray:
    """A horizontal rectangle at height ``y``."""
    return np.array([[x0, y, z0], [x1, y, z0], [x1, y, z1], [x0, y, z1]], dtype=np.float64)


def billboard(z: float, points_xy: np.ndarray) -> np.ndarray:
    """A polygon in the vertical plane of constant ``z`` from (N, 2) world x, y points."""
    pts = np.asarray(points_xy, dtype=np.float64)
    out = np.empty((len(pts), 3))
    out[:, :2] = pts
    out[:, 2] = z
    return out


def side_polygon(x: float, points_zy: np.ndarray) -> np.ndarray:
    """A polygon in the vertical plane of constant ``x`` from (N, 2) world z, y points."""
    pts = np.asarray(points_zy, dtype=np.float64)
    out = np.empty((len(pts), 3))
    out[:, 0] = x
    out[:, 1] = pts[:, 1]
    out[:, 2] = pts[:, 0]
    return out


def ellipse_points(cx: float, cy: float, rx: float, ry: float, n: int = 14, phase: float = 0.0) -> np.ndarray:
    """(n, 2) points of an ellipse, for discs, heads and crowns."""
    if phase:
        a = np.linspace(0.0, 2 * np.pi, n, endpoint=False) + phase
        unit = np.column_stack([np.cos(a), np.sin(a)])
    else:
        unit = _unit_circle(n)
    return unit * (rx, ry) + (cx, cy)


@lru_cache(maxsize=32)
def _unit_circle(n: int) -> np.ndarray:
    a = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    return np.column_stack([np.cos(a), np.sin(a)])


def thick_segment(p0: tuple[float, float], p1: tuple[float, float], width: float) -> np.ndarray:
    """(4, 2) quad of a 2D segment with the given width (limbs, frames, arms)."""
    p0a, p1a = np.asarray(p0, dtype=np.float64), np.asarray(p1, dtype=np.float64)
    d = p1a - p0a
    n = np.array([-d[1], d[0]]) / max(float(np.hypot(*d)), 1e-9) * (width / 2)
    return np.array([p0a + n, p1a + n, p1a - n, p0a - n])
