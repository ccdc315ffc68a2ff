"""Buildings: shaded boxes with window grids, shop fronts and a cornice."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bialign_ros.classes import CITYSCAPES_NAMES
from bialign_ros.synthetic.objects import BACK, GLASS_TONES, Extent, WorldObject, hull_shadow, jitter, pick
from bialign_ros.synthetic.raster import Box, Face, Painter
from bialign_ros.synthetic.textures import FACADE, GLASS

BUILDING = CITYSCAPES_NAMES.index("building")


@dataclass(frozen=True)
class Building(WorldObject):
    """A block of the frontage with windows on every storey."""

    box: Box
    color: np.ndarray
    glass: np.ndarray
    storey: float
    ground_floor: float
    window_w: float
    window_h: float
    column: float
    shop_front: bool
    window_seed: int
    layer = BACK

    @staticmethod
    def sample(rng: np.random.Generator, box: Box, palette: list[tuple[float, float, float]]) -> Building:
        """Draw the colours and window layout of a building filling ``box``."""
        storey = rng.uniform(2.8, 3.6)
        return Building(
            box=box,
            color=pick(rng, palette, 0.1),
            glass=np.array([pick(rng, GLASS_TONES, 0.2) for _ in range(3)]),
            storey=storey,
            ground_floor=rng.uniform(3.5, 4.8),
            window_w=rng.uniform(0.8, 1.7),
            window_h=storey * rng.uniform(0.4, 0.6),
            column=rng.uniform(2.2, 3.6),
            shop_front=bool(rng.random() < 0.5),
            window_seed=int(rng.integers(1 << 31)),
        )

    def extent(self, t: float) -> Extent:
        b = self.box
        return Extent(b.x0, b.x1, b.z0, b.z1, b.y1)

    def cast_shadow(self, painter: Painter, t: float) -> None:
        b = self.box
        corners = np.array([[b.x0, b.z0], [b.x1, b.z0], [b.x1, b.z1], [b.x0, b.z1]])
        painter.shadow([hull_shadow(corners, [b.y1] * 4, painter.look.sun_direction)])

    def draw(self, painter: Painter, t: float) -> None:
        eye = painter.camera_position
        b = self.box
        near = np.array([min(max(eye[0], b.x0), b.x1), 5.0, min(max(eye[2] + 2.0, b.z0), b.z1)])
        depth = painter.camera.depth_of(near)
        for face in b.visible_faces(eye):
            if face.normal[1] > 0:
                continue
            # One stream per face keeps each facade's windows fixed while other faces come and go.
            axis = int(np.argmax(np.abs(face.normal)))
            rng = np.random.default_rng([self.window_seed, 2 * axis + int(face.normal[axis] > 0)])
            wall = painter.material(BUILDING, self.color, FACADE, normal=face.normal, depth=depth)
            painter.fill([face.polygon()], wall)
            painter.fill(
                [face.rect(0.0, face.s_size, face.t_size - 0.6, face.t_size)],
                painter.material(BUILDING, self.color * 0.75, FACADE, normal=face.normal, depth=depth),
            )
            self._windows(painter, face, rng, depth)

    def _windows(self, painter: Painter, face: Face, rng: np.random.Generator, depth: float) -> None:
        """Window grid on the upper storeys and a shop front or doors at street level."""
        w, h = face.s_size, face.t_size
        cols = np.arange(self.column / 2, w - self.window_w / 2, self.column)
        rows = np.arange(self.ground_floor + 0.9, h - self.window_h - 0.7, self.storey)
        if len(cols) and len(rows):
            s0, t0 = np.meshgrid(cols - self.window_w / 2, rows)
            bounds = np.column_stack(
                [s0.ravel(), s0.ravel() + self.window_w, t0.ravel(), t0.ravel() + self.window_h]
            )
            choice = rng.integers(len(self.glass), size=len(bounds))
            for k, tone in enumerate(self.glass):
                sel = bounds[choice == k]
                if len(sel):
                    painter.fill_disjoint(
                        face.rects(sel),
                        painter.material(BUILDING, tone, GLASS, normal=face.normal, depth=depth),
                    )
        glass = painter.material(BUILDING, self.glass[0] * 1.2, GLASS, normal=face.normal, depth=depth)
        if self.shop_front and w > 3.0:
            starts = np.arange(0.4, w - 2.0, 4.0)
            bounds = np.column_stack(
                [
                    starts,
                    np.minimum(starts + 3.4, w - 0.4),
                    np.full(len(starts), 0.5),
                    np.full(len(starts), self.ground_floor - 0.6),
                ]
            )
            painter.fill_disjoint(face.rects(bounds), glass)
        elif w > 2.0:
            door = rng.uniform(0.3, max(0.4, w - 1.6))
            painter.fill(
                [face.rect(door, door + 1.2, 0.0, 2.3)],
                painter.material(
                    BUILDING, jitter(rng, (0.3, 0.22, 0.16), 0.3), FACADE, normal=face.normal, depth=depth
                ),
            )
