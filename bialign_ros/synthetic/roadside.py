"""Street furniture and greenery: lamps, signs, traffic lights, trees, hedges, walls, fences."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bialign_ros.classes import CITYSCAPES_NAMES
from bialign_ros.synthetic.objects import (
    CONCRETE_TONES,
    EDGE,
    FOLIAGE_TONES,
    METALS,
    STREET,
    Color,
    Extent,
    Normal,
    WorldObject,
    jitter,
    pick,
    sun_offset,
    upright_shadow,
)
from bialign_ros.synthetic.raster import Box, Painter, billboard, ellipse_points, side_polygon
from bialign_ros.synthetic.textures import CONCRETE, FOLIAGE, METAL, SMOOTH

POLE, TRAFFIC_LIGHT, TRAFFIC_SIGN, VEGETATION, WALL, FENCE = (
    CITYSCAPES_NAMES.index(n)
    for n in ("pole", "traffic light", "traffic sign", "vegetation", "wall", "fence")
)
TOWARDS_CAMERA = (0.0, 0.0, -1.0)
AWAY = (0.0, 0.0, 1.0)
SIGN_RED, SIGN_WHITE, SIGN_BLUE = (0.75, 0.08, 0.08), (0.9, 0.9, 0.88), (0.1, 0.3, 0.7)
SIGN_YELLOW, SIGN_GREEN = (0.95, 0.78, 0.1), (0.1, 0.45, 0.3)
DETAIL_PIXELS = 6.0
"""Crowns smaller than this (radius in pixels) are drawn as a single blob."""


def _upright(x: float, z: float, width: float, y0: float, y1: float) -> np.ndarray:
    """A vertical strip facing the camera (poles, trunks, posts)."""
    return billboard(z, [(x - width / 2, y0), (x + width / 2, y0), (x + width / 2, y1), (x - width / 2, y1)])


@dataclass(frozen=True)
class StreetLamp(WorldObject):
    """A lamp post at the curb with an arm reaching over the road."""

    x: float
    z: float
    base: float
    height: float
    arm: float
    color: np.ndarray

    def extent(self, t: float) -> Extent:
        return Extent(
            min(self.x, self.x + self.arm),
            max(self.x, self.x + self.arm),
            self.z - 0.1,
            self.z + 0.1,
            self.height,
        )

    def cast_shadow(self, painter: Painter, t: float) -> None:
        painter.shadow([upright_shadow(self.x, self.z, 0.15, self.height, painter.look.sun_direction)])

    def draw(self, painter: Painter, t: float) -> None:
        depth = painter.camera.depth_of(np.array([self.x, 3.0, self.z]))
        mat = painter.material(POLE, self.color, METAL, depth=depth)
        top = self.base + self.height
        tip = self.x + self.arm
        painter.fill(
            [
                _upright(self.x, self.z, 0.18, self.base, top),
                billboard(
                    self.z, [(self.x, top - 0.12), (tip, top - 0.05), (tip, top + 0.03), (self.x, top)]
                ),
                billboard(
                    self.z,
                    [
                        (tip - 0.35, top - 0.12),
                        (tip + 0.35, top - 0.12),
                        (tip + 0.25, top + 0.05),
                        (tip - 0.25, top + 0.05),
                    ],
                ),
            ],
            mat,
        )


@dataclass(frozen=True)
class SignPost(WorldObject):
    """A post carrying one or two traffic signs; ``facing`` -1 shows the sign faces to the camera."""

    x: float
    z: float
    base: float
    height: float
    shapes: tuple[str, ...]
    size: float
    facing: int
    pole_color: np.ndarray

    def extent(self, t: float) -> Extent:
        return Extent(
            self.x - self.size / 2,
            self.x + self.size / 2,
            self.z - 0.05,
            self.z + 0.05,
            self.base + self.height,
        )

    def cast_shadow(self, painter: Painter, t: float) -> None:
        painter.shadow([upright_shadow(self.x, self.z, 0.1, self.height, painter.look.sun_direction)])

    def draw(self, painter: Painter, t: float) -> None:
        depth = painter.camera.depth_of(np.array([self.x, 2.0, self.z]))
        top = self.base + self.height
        painter.fill(
            [_upright(self.x, self.z + 0.03, 0.08, self.base, top)],
            painter.material(POLE, self.pole_color, METAL, depth=depth),
        )
        visible_face = (
            painter.camera_position[2] < self.z if self.facing < 0 else painter.camera_position[2] > self.z
        )
        normal = TOWARDS_CAMERA if self.facing < 0 else AWAY
        y = top - self.size / 2
        for shape in self.shapes:
            self._draw_sign(painter, shape, y, visible_face, normal, depth)
            y -= self.size * 1.05

    def _draw_sign(
        self, painter: Painter, shape: str, y: float, front: bool, normal: Normal, depth: float
    ) -> None:
        s = self.size / 2
        x, z = self.x, self.z

        def mat(color: Color) -> int:
            return painter.material(
                TRAFFIC_SIGN,
                color if front else (0.55, 0.56, 0.57),
                SMOOTH if front else METAL,
                normal=normal,
                depth=depth,
            )

        def outline(scale: float) -> np.ndarray:
            k = s * scale
            if shape in ("round", "blue_round"):
                return ellipse_points(x, y, k, k, 16)
            if shape == "triangle":
                return np.array([(x - k, y - 0.8 * k), (x + k, y - 0.8 * k), (x, y + k)])
            if shape == "octagon":
                return ellipse_points(x, y, k, k, 8, phase=np.pi / 8)
            if shape == "diamond":
                return np.array([(x, y - k), (x + k, y), (x, y + k), (x - k, y)])
            w = 1.6 if shape == "plate" else 1.0
            return np.array(
                [
                    (x - w * k, y - 0.75 * k),
                    (x + w * k, y - 0.75 * k),
                    (x + w * k, y + 0.75 * k),
                    (x - w * k, y + 0.75 * k),
                ]
            )

        outer, inner = {
            "round": (SIGN_RED, SIGN_WHITE),
            "blue_round": (SIGN_WHITE, SIGN_BLUE),
            "triangle": (SIGN_RED, SIGN_WHITE),
            "octagon": (SIGN_WHITE, SIGN_RED),
            "diamond": (SIGN_WHITE, SIGN_YELLOW),
            "square": (SIGN_WHITE, SIGN_BLUE),
            "plate": (SIGN_WHITE, SIGN_GREEN),
        }[shape]
        painter.fill([billboard(z, outline(1.0))], mat(outer))
        if front:
            painter.fill([billboard(z - 0.01 * self.facing, outline(0.78))], mat(inner))


@dataclass(frozen=True)
class TrafficLight(WorldObject):
    """A traffic-light pole at the curb, optionally with an arm holding a second light over the road."""

    x: float
    z: float
    base: float
    height: float
    arm: float
    housing: np.ndarray
    pole_color: np.ndarray
    lit: int

    def extent(self, t: float) -> Extent:
        return Extent(
            min(self.x, self.x + self.arm) - 0.2,
            max(self.x, self.x + self.arm) + 0.2,
            self.z - 0.1,
            self.z + 0.1,
            self.base + self.height + 1.0,
        )

    def cast_shadow(self, painter: Painter, t: float) -> None:
        painter.shadow([upright_shadow(self.x, self.z, 0.15, self.height, painter.look.sun_direction)])

    def draw(self, painter: Painter, t: float) -> None:
        depth = painter.camera.depth_of(np.array([self.x, 3.0, self.z]))
        top = self.base + self.height
        pole = painter.material(POLE, self.pole_color, METAL, depth=depth)
        painter.fill(
            [_upright(self.x, self.z + 0.05, 0.14, self.base, top + (0.25 if self.arm else 0.0))], pole
        )
        front = painter.camera_position[2] < self.z
        heads = [(self.x, top - 0.45)]
        if self.arm:
            tip = self.x + self.arm
            painter.fill(
                [
                    billboard(
                        self.z + 0.05,
                        [(self.x, top + 0.1), (tip, top + 0.1), (tip, top + 0.22), (self.x, top + 0.22)],
                    )
                ],
                pole,
            )
            heads.append((tip - 0.3 * np.sign(self.arm), top - 0.55))
        housing = painter.material(TRAFFIC_LIGHT, self.housing, SMOOTH, normal=TOWARDS_CAMERA, depth=depth)
        for hx, hy in heads:
            painter.fill(
                [
                    billboard(
                        self.z,
                        [
                            (hx - 0.17, hy - 0.45),
                            (hx + 0.17, hy - 0.45),
                            (hx + 0.17, hy + 0.5),
                            (hx - 0.17, hy + 0.5),
                        ],
                    )
                ],
                housing,
            )
            if not front:
                continue
            for i, color in enumerate(((0.9, 0.1, 0.05), (0.95, 0.65, 0.05), (0.1, 0.85, 0.35))):
                lamp = np.asarray(color) * (1.2 if i == self.lit else 0.25)
                painter.fill(
                    [billboard(self.z - 0.01, ellipse_points(hx, hy + 0.28 - 0.28 * i, 0.1, 0.1, 10))],
                    painter.material(TRAFFIC_LIGHT, lamp, SMOOTH, depth=depth),
                )


@dataclass(frozen=True)
class Tree(WorldObject):
    """A tree: a trunk and a crown of overlapping leafy blobs (all vegetation)."""

    x: float
    z: float
    base: float
    trunk_height: float
    crown_radius: float
    blobs: np.ndarray
    tones: np.ndarray
    bark: np.ndarray
    layer: int = STREET

    @staticmethod
    def sample(
        rng: np.random.Generator, x: float, z: float, base: float, scale: float = 1.0, layer: int = STREET
    ) -> Tree:
        """Draw a tree's size, crown shape and foliage tones."""
        radius = rng.uniform(1.4, 3.2) * scale
        n = int(rng.integers(5, 10))
        blobs = np.column_stack(
            [
                rng.normal(0, 0.45, n) * radius,
                rng.normal(0, 0.35, n) * radius,
                rng.uniform(0.45, 0.75, n) * radius,
            ]
        )
        base_tone = pick(rng, FOLIAGE_TONES, 0.12)
        tones = np.clip(
            base_tone * rng.uniform(0.85, 1.15, (n, 1)) + rng.uniform(-0.05, 0.05, (n, 3)), 0.0, 1.0
        )
        return Tree(
            x,
            z,
            base,
            rng.uniform(1.8, 3.5) * scale,
            radius,
            blobs,
            tones,
            jitter(rng, (0.3, 0.24, 0.18), 0.2),
            layer,
        )

    def extent(self, t: float) -> Extent:
        r = self.crown_radius
        return Extent(self.x - r, self.x + r, self.z - 0.3, self.z + 0.3, self.trunk_height + 2 * r)

    def cast_shadow(self, painter: Painter, t: float) -> None:
        sun = painter.look.sun_direction
        centre = self.base + self.trunk_height + 0.7 * self.crown_radius
        dx, dz = sun_offset(sun, centre)
        crown = ellipse_points(self.x + dx, self.z + dz, self.crown_radius, self.crown_radius * 0.8, 12)
        painter.shadow(
            [
                np.column_stack([crown[:, 0], np.full(len(crown), 0.01), crown[:, 1]]),
                upright_shadow(self.x, self.z, 0.3, centre, sun),
            ]
        )

    def draw(self, painter: Painter, t: float) -> None:
        depth = painter.camera.depth_of(np.array([self.x, 3.0, self.z]))
        top = self.base + self.trunk_height
        painter.fill(
            [_upright(self.x, self.z, 0.3, self.base, top + 0.5 * self.crown_radius)],
            painter.material(VEGETATION, self.bark, CONCRETE, depth=depth),
        )
        cy = top + 0.7 * self.crown_radius
        if painter.pixels(self.crown_radius, depth) < DETAIL_PIXELS:
            crown = ellipse_points(self.x, cy, self.crown_radius, self.crown_radius * 0.9, 10)
            painter.fill(
                [billboard(self.z, crown)], painter.material(VEGETATION, self.tones[0], FOLIAGE, depth=depth)
            )
            return
        for (bx, by, br), tone in zip(self.blobs, self.tones):
            blob = ellipse_points(self.x + bx, cy + by, br, br * 0.9, 12)
            painter.fill([billboard(self.z, blob)], painter.material(VEGETATION, tone, FOLIAGE, depth=depth))


@dataclass(frozen=True)
class Hedge(WorldObject):
    """A trimmed hedge along z with a bumpy top."""

    x0: float
    x1: float
    z0: float
    z1: float
    base: float
    height: float
    tone: np.ndarray
    layer = EDGE

    def extent(self, t: float) -> Extent:
        return Extent(self.x0, self.x1, self.z0, self.z1, self.base + self.height)

    def draw(self, painter: Painter, t: float) -> None:
        eye = painter.camera_position
        depth = painter.camera.depth_of(np.array([(self.x0 + self.x1) / 2, 1.0, max(self.z0, eye[2] + 1.0)]))
        box = Box(self.x0, self.x1, self.base, self.base + self.height, self.z0, self.z1)
        for face in box.visible_faces(eye):
            painter.fill(
                [face.polygon()],
                painter.material(VEGETATION, self.tone, FOLIAGE, normal=face.normal, depth=depth),
            )
        if eye[0] < self.x0 or eye[0] > self.x1:
            x = self.x0 if eye[0] < self.x0 else self.x1
            zs = np.arange(self.z0 + 0.4, self.z1 - 0.3, 0.8)
            top = self.base + self.height
            bumps = [side_polygon(x, ellipse_points(z, top, 0.45, 0.2, 8)) for z in zs]
            painter.fill(bumps, painter.material(VEGETATION, self.tone * 1.1, FOLIAGE, depth=depth))


@dataclass(frozen=True)
class Wall(WorldObject):
    """A free-standing wall along z, with a darker coping on top."""

    x: float
    z0: float
    z1: float
    base: float
    height: float
    thickness: float
    color: np.ndarray
    layer = EDGE

    @staticmethod
    def sample(rng: np.random.Generator, x: float, z0: float, z1: float, base: float) -> Wall:
        """Draw a wall's height, thickness and material colour."""
        return Wall(
            x, z0, z1, base, rng.uniform(0.6, 2.4), rng.uniform(0.2, 0.4), pick(rng, CONCRETE_TONES, 0.12)
        )

    def extent(self, t: float) -> Extent:
        return Extent(
            self.x - self.thickness / 2,
            self.x + self.thickness / 2,
            self.z0,
            self.z1,
            self.base + self.height,
        )

    def draw(self, painter: Painter, t: float) -> None:
        eye = painter.camera_position
        e = self.extent(t)
        depth = painter.camera.depth_of(np.array([self.x, 1.0, max(self.z0, eye[2] + 1.0)]))
        box = Box(e.x0, e.x1, self.base, e.top, self.z0, self.z1)
        for face in box.visible_faces(eye):
            painter.fill(
                [face.polygon()],
                painter.material(WALL, self.color, CONCRETE, normal=face.normal, depth=depth),
            )
            if face.normal[1] == 0:
                painter.fill(
                    [face.rect(0, face.s_size, face.t_size - 0.1, face.t_size)],
                    painter.material(WALL, self.color * 0.7, CONCRETE, normal=face.normal, depth=depth),
                )


@dataclass(frozen=True)
class Fence(WorldObject):
    """A see-through fence along z: posts, two rails and vertical bars."""

    x: float
    z0: float
    z1: float
    base: float
    height: float
    spacing: float
    color: np.ndarray
    layer = EDGE

    @staticmethod
    def sample(rng: np.random.Generator, x: float, z0: float, z1: float, base: float) -> Fence:
        """Draw a fence's height, bar spacing and colour (metal or wood)."""
        color = pick(rng, METALS + [(0.45, 0.32, 0.2), (0.85, 0.85, 0.82)], 0.1)
        return Fence(x, z0, z1, base, rng.uniform(0.9, 2.0), rng.uniform(0.12, 0.3), color)

    def extent(self, t: float) -> Extent:
        return Extent(self.x - 0.05, self.x + 0.05, self.z0, self.z1, self.base + self.height)

    def draw(self, painter: Painter, t: float) -> None:
        eye = painter.camera_position
        z_near = max(self.z0, eye[2] + 1.0)
        depth = painter.camera.depth_of(np.array([self.x, 1.0, z_near]))
        normal = (-1.0, 0.0, 0.0) if eye[0] < self.x else (1.0, 0.0, 0.0)
        mat = painter.material(FENCE, self.color, METAL, normal=normal, depth=depth)
        y0, y1 = self.base, self.base + self.height
        zs = np.arange(self.z0, self.z1, self.spacing)
        zs = zs[zs > eye[2] - 2.0]
        bars = [
            side_polygon(
                self.x, [(z, y0 + 0.05), (z + 0.04, y0 + 0.05), (z + 0.04, y1 - 0.05), (z, y1 - 0.05)]
            )
            for z in zs
        ]
        painter.fill_disjoint(bars, mat)
        rails = [
            side_polygon(self.x, [(self.z0, y), (self.z1, y), (self.z1, y + 0.06), (self.z0, y + 0.06)])
            for y in (y0 + 0.1, y1 - 0.1)
        ]
        painter.fill_disjoint(rails, mat)
        posts = [
            side_polygon(self.x, [(z, y0), (z + 0.1, y0), (z + 0.1, y1), (z, y1)])
            for z in np.arange(self.z0, self.z1, 2.5)
        ]
        painter.fill_disjoint(posts, mat)


def sample_sign_shapes(rng: np.random.Generator) -> tuple[str, ...]:
    """One or two sign shapes for a post."""
    shapes = ("round", "blue_round", "triangle", "octagon", "diamond", "square", "plate")
    n = 1 if rng.random() < 0.7 else 2
    return tuple(shapes[int(i)] for i in rng.integers(len(shapes), size=n))


def lamp_color(rng: np.random.Generator) -> np.ndarray:
    """Paint of a lamp post or sign post."""
    return pick(rng, METALS, 0.1)


def housing_color(rng: np.random.Generator) -> np.ndarray:
    """Paint of a traffic-light housing: mostly black or dark grey, sometimes yellow."""
    return pick(rng, [(0.08, 0.08, 0.08), (0.2, 0.2, 0.2), (0.85, 0.7, 0.1), (0.12, 0.2, 0.15)], 0.1)
