"""The base of everything placed in a street, and the colour ranges shared between objects."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from bialign_ros.synthetic.raster import Painter

BACK, EDGE, STREET = 0, 1, 2
"""Drawing layers, back to front: frontage (buildings, parks), sidewalk-edge lines (walls,
fences, hedges) and street objects. Every street object stands between the camera and the
layers behind it, so sorting by distance only happens within a layer."""


@dataclass(frozen=True)
class Extent:
    """Axis-aligned world bounds of an object at one instant, used for culling."""

    x0: float
    x1: float
    z0: float
    z1: float
    top: float


Color = np.ndarray | tuple[float, float, float]
"""An RGB colour with channels in [0, 1]."""
Normal = tuple[float, float, float]
"""A unit surface normal in world coordinates."""


class WorldObject(ABC):
    """An object of the street that draws itself into a :class:`Painter`."""

    layer: int = STREET

    @abstractmethod
    def extent(self, t: float) -> Extent:
        """World bounds at time ``t`` (seconds since the first frame)."""

    def distance(self, eye: np.ndarray, t: float) -> float:
        """Horizontal distance from ``eye`` to the nearest footprint point, for depth sorting."""
        e = self.extent(t)
        px = min(max(eye[0], e.x0), e.x1)
        pz = min(max(eye[2], e.z0), e.z1)
        return float(np.hypot(eye[0] - px, eye[2] - pz))

    @abstractmethod
    def draw(self, painter: Painter, t: float) -> None:
        """Fill this object's polygons into the painter's surface map."""

    def cast_shadow(self, painter: Painter, t: float) -> None:  # noqa: B027 - most objects cast none
        """Mark the ground this object shades; objects without a shadow keep the default."""


def sun_offset(sun: tuple[float, float, float], height: float) -> np.ndarray:
    """Ground (x, z) displacement of the shadow of a point ``height`` metres above the ground."""
    s = np.asarray(sun)
    return -height * np.array([s[0], s[2]]) / max(s[1], 0.2)


def hull_shadow(
    points_xz: np.ndarray, heights: Sequence[float], sun: tuple[float, float, float]
) -> np.ndarray:
    """Ground shadow polygon of vertical prisms: hull of footprint points and their sun offsets."""
    base = np.asarray(points_xz, dtype=np.float64)
    tops = base + np.array([sun_offset(sun, h) for h in heights])
    pts = np.concatenate([base, tops]).astype(np.float32)
    hull = cv2.convexHull(pts)[:, 0, :].astype(np.float64)
    return np.column_stack([hull[:, 0], np.full(len(hull), 0.01), hull[:, 1]])


def upright_shadow(
    x: float, z: float, width: float, height: float, sun: tuple[float, float, float]
) -> np.ndarray:
    """Ground shadow of a thin upright object (person, pole, trunk) standing at (x, z)."""
    dx, dz = sun_offset(sun, height)
    half = width / 2
    pts = [[x - half, z], [x + half, z], [x + half + dx, z + dz], [x - half + dx, z + dz]]
    return np.array([[px, 0.01, pz] for px, pz in pts])


def jitter(rng: np.random.Generator, color: tuple[float, float, float], amount: float) -> np.ndarray:
    """A colour with a random brightness change and a small per-channel tint."""
    r = rng.random(4)
    k = 1.0 - amount + 2.0 * amount * r[0]
    tint = (2.0 * r[1:] - 1.0) * (amount / 3.0)
    return np.array([min(1.0, max(0.0, c * k + d)) for c, d in zip(color, tint)])


def pick(rng: np.random.Generator, palette: list[tuple[float, float, float]], amount: float) -> np.ndarray:
    """A jittered colour drawn from a palette."""
    return jitter(rng, palette[int(rng.integers(len(palette)))], amount)


VEHICLE_PAINTS = [
    (0.9, 0.9, 0.9),
    (0.06, 0.06, 0.07),
    (0.65, 0.66, 0.68),
    (0.38, 0.39, 0.41),
    (0.12, 0.16, 0.35),
    (0.6, 0.08, 0.07),
    (0.2, 0.32, 0.6),
    (0.12, 0.25, 0.15),
    (0.72, 0.65, 0.52),
    (0.35, 0.22, 0.15),
    (0.85, 0.7, 0.15),
    (0.55, 0.56, 0.5),
]
FACADES = [
    (0.8, 0.72, 0.58),
    (0.9, 0.86, 0.76),
    (0.55, 0.55, 0.55),
    (0.88, 0.88, 0.86),
    (0.6, 0.32, 0.24),
    (0.45, 0.34, 0.26),
    (0.88, 0.78, 0.5),
    (0.84, 0.66, 0.6),
    (0.55, 0.6, 0.66),
    (0.32, 0.32, 0.33),
]
CONCRETE_TONES = [
    (0.62, 0.62, 0.6),
    (0.72, 0.7, 0.66),
    (0.5, 0.5, 0.52),
    (0.58, 0.36, 0.28),
    (0.8, 0.78, 0.7),
]
FOLIAGE_TONES = [
    (0.18, 0.32, 0.12),
    (0.25, 0.4, 0.15),
    (0.3, 0.42, 0.22),
    (0.14, 0.24, 0.12),
    (0.42, 0.45, 0.2),
]
METALS = [(0.5, 0.52, 0.54), (0.35, 0.36, 0.38), (0.15, 0.25, 0.2), (0.12, 0.12, 0.13), (0.65, 0.66, 0.66)]
CLOTHES = [
    (0.08, 0.08, 0.1),
    (0.2, 0.22, 0.3),
    (0.5, 0.5, 0.52),
    (0.85, 0.85, 0.82),
    (0.6, 0.12, 0.1),
    (0.15, 0.25, 0.5),
    (0.4, 0.3, 0.2),
    (0.3, 0.4, 0.25),
    (0.75, 0.6, 0.3),
    (0.55, 0.3, 0.45),
]
SKIN_TONES = [(0.85, 0.68, 0.56), (0.7, 0.52, 0.4), (0.45, 0.32, 0.24), (0.92, 0.78, 0.68)]
GLASS_TONES = [(0.12, 0.15, 0.2), (0.22, 0.28, 0.34), (0.35, 0.42, 0.5), (0.08, 0.09, 0.1)]
