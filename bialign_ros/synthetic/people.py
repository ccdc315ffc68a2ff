"""Pedestrians, riders and bicycles/motorcycles, drawn as flat figures in vertical planes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bialign_ros.classes import CITYSCAPES_NAMES
from bialign_ros.synthetic.objects import (
    CLOTHES,
    METALS,
    SKIN_TONES,
    VEHICLE_PAINTS,
    Color,
    Extent,
    Normal,
    WorldObject,
    pick,
    upright_shadow,
)
from bialign_ros.synthetic.raster import Painter, billboard, ellipse_points, side_polygon, thick_segment
from bialign_ros.synthetic.textures import CLOTH, METAL, SMOOTH

PERSON, RIDER, MOTORCYCLE, BICYCLE = (
    CITYSCAPES_NAMES.index(n) for n in ("person", "rider", "motorcycle", "bicycle")
)
TOWARDS_CAMERA = (0.0, 0.0, -1.0)
DETAIL_PIXELS = 24.0
"""Figures shorter than this many pixels are drawn as a simple silhouette."""
HAIR = [(0.08, 0.06, 0.05), (0.3, 0.2, 0.1), (0.6, 0.5, 0.3), (0.5, 0.5, 0.5), (0.15, 0.1, 0.08)]


@dataclass(frozen=True)
class Outfit:
    """Colours and proportions of one figure."""

    height: float
    build: float
    skin: np.ndarray
    hair: np.ndarray
    top: np.ndarray
    bottom: np.ndarray
    shoes: np.ndarray
    coat: bool

    @staticmethod
    def sample(rng: np.random.Generator, child: bool = False) -> Outfit:
        """Draw a figure: adult or child height, clothes from a muted palette."""
        height = rng.uniform(1.05, 1.4) if child else rng.uniform(1.55, 1.95)
        return Outfit(
            height=height,
            build=rng.uniform(0.85, 1.2),
            skin=pick(rng, SKIN_TONES, 0.08),
            hair=pick(rng, HAIR, 0.1),
            top=pick(rng, CLOTHES, 0.15),
            bottom=pick(rng, CLOTHES, 0.15),
            shoes=pick(rng, CLOTHES[:3], 0.1),
            coat=bool(rng.random() < 0.3),
        )


def draw_figure(
    painter: Painter,
    outfit: Outfit,
    x: float,
    z: float,
    base: float,
    stride: float,
    train_id: int,
    depth: float,
    instance: int,
    sitting: bool = False,
) -> None:
    """Draw a person facing the camera in the plane of constant ``z``, feet at height ``base``.

    ``stride`` in [-1, 1] swings legs and arms; a sitting figure (a rider) has its hips at
    ``base`` and its legs hanging down to the pedals.
    """
    h = outfit.height
    b = outfit.build
    if painter.pixels(h, depth) < DETAIL_PIXELS:
        _draw_silhouette(painter, outfit, x, z, base, train_id, depth, instance, sitting)
        return

    def mat(color: Color, texture: tuple[float, float, float] = CLOTH) -> int:
        return painter.material(
            train_id, color, texture, normal=TOWARDS_CAMERA, depth=depth, instance=instance
        )

    hip = base + (0.0 if sitting else 0.5 * h)
    shoulder = hip + 0.3 * h
    legs = mat(outfit.bottom)
    if sitting:
        foot_y = max(base - 0.45 * h, 0.15)
        painter.fill(
            [
                billboard(z, thick_segment((x - 0.08 * h, hip), (x - 0.13 * h, foot_y), 0.075 * h * b)),
                billboard(z, thick_segment((x + 0.08 * h, hip), (x + 0.13 * h, foot_y), 0.075 * h * b)),
            ],
            legs,
        )
    else:
        shoes = mat(outfit.shoes, SMOOTH)
        for side in (-1.0, 1.0):
            # Seen from the front, the swinging leg shows as a lifted foot.
            lift = 0.05 * h * max(0.0, stride * side)
            fx, fy = x + side * 0.07 * h, base + lift
            painter.fill(
                [billboard(z, thick_segment((x + side * 0.05 * h * b, hip), (fx, fy + 0.02), 0.08 * h * b))],
                legs,
            )
            shoe = [(fx - 0.05, fy), (fx + 0.05, fy), (fx + 0.05, fy + 0.06), (fx - 0.05, fy + 0.06)]
            painter.fill([billboard(z, shoe)], shoes)
    hem = hip - (0.25 * h if outfit.coat and not sitting else 0.03 * h)
    torso = [
        (x - 0.1 * h * b, hem),
        (x + 0.1 * h * b, hem),
        (x + 0.125 * h * b, shoulder),
        (x + 0.09 * h * b, shoulder + 0.025 * h),
        (x - 0.09 * h * b, shoulder + 0.025 * h),
        (x - 0.125 * h * b, shoulder),
    ]
    top = mat(outfit.top)
    painter.fill([billboard(z, torso)], top)
    skin = mat(outfit.skin, SMOOTH)
    for side in (-1.0, 1.0):
        hand = (x + side * 0.15 * h * b, shoulder - 0.3 * h - 0.02 * h * stride * side)
        painter.fill(
            [billboard(z, thick_segment((x + side * 0.115 * h * b, shoulder - 0.01 * h), hand, 0.055 * h))],
            top,
        )
        painter.fill([billboard(z, ellipse_points(hand[0], hand[1], 0.025 * h, 0.035 * h, 8))], skin)
    neck_top = shoulder + 0.06 * h
    painter.fill(
        [
            billboard(
                z,
                [
                    (x - 0.03 * h, shoulder),
                    (x + 0.03 * h, shoulder),
                    (x + 0.03 * h, neck_top),
                    (x - 0.03 * h, neck_top),
                ],
            )
        ],
        skin,
    )
    head_y = shoulder + 0.11 * h
    painter.fill([billboard(z, ellipse_points(x, head_y, 0.055 * h, 0.066 * h, 14))], skin)
    hair = ellipse_points(x, head_y + 0.012 * h, 0.058 * h, 0.062 * h, 14)
    hair = hair[hair[:, 1] >= head_y - 0.005 * h]
    painter.fill([billboard(z, hair)], mat(outfit.hair, SMOOTH))


def _draw_silhouette(
    painter: Painter,
    outfit: Outfit,
    x: float,
    z: float,
    base: float,
    train_id: int,
    depth: float,
    instance: int,
    sitting: bool,
) -> None:
    """A distant figure: legs, body and head as three polygons."""
    h = outfit.height
    hip = base + (0.0 if sitting else 0.5 * h)
    foot = max(base - 0.45 * h, 0.15) if sitting else base
    shoulder = hip + 0.3 * h

    def mat(color: np.ndarray) -> int:
        return painter.material(train_id, color, CLOTH, normal=TOWARDS_CAMERA, depth=depth, instance=instance)

    painter.fill(
        [billboard(z, [(x - 0.1 * h, foot), (x + 0.1 * h, foot), (x + 0.1 * h, hip), (x - 0.1 * h, hip)])],
        mat(outfit.bottom),
    )
    painter.fill(
        [
            billboard(
                z,
                [
                    (x - 0.13 * h, hip),
                    (x + 0.13 * h, hip),
                    (x + 0.11 * h, shoulder + 0.03 * h),
                    (x - 0.11 * h, shoulder + 0.03 * h),
                ],
            )
        ],
        mat(outfit.top),
    )
    painter.fill(
        [billboard(z, ellipse_points(x, shoulder + 0.11 * h, 0.06 * h, 0.08 * h, 8))], mat(outfit.skin)
    )


@dataclass(frozen=True)
class Pedestrian(WorldObject):
    """A person walking along z (``speed`` may be zero: standing)."""

    x: float
    z0: float
    speed: float
    outfit: Outfit
    phase: float
    base: float

    def extent(self, t: float) -> Extent:
        z = self.z0 + self.speed * t
        half = 0.2 * self.outfit.height
        return Extent(self.x - half, self.x + half, z - 0.15, z + 0.15, self.base + self.outfit.height)

    def cast_shadow(self, painter: Painter, t: float) -> None:
        z = self.z0 + self.speed * t
        painter.shadow([upright_shadow(self.x, z, 0.35, self.outfit.height, painter.look.sun_direction)])

    def draw(self, painter: Painter, t: float) -> None:
        z = self.z0 + self.speed * t
        stride = np.sin(self.phase + 2 * np.pi * abs(self.speed) * t / 1.4) if self.speed else 0.3
        depth = painter.camera.depth_of(np.array([self.x, 1.0, z]))
        draw_figure(
            painter,
            self.outfit,
            self.x,
            z,
            self.base,
            float(stride),
            PERSON,
            depth,
            painter.new_instance(PERSON),
        )


@dataclass(frozen=True)
class Cycle:
    """Shape and colours of a bicycle or motorcycle, in its own (s forward, y up) frame."""

    train_id: int
    radius: float
    wheelbase: float
    frame: np.ndarray

    @staticmethod
    def sample(rng: np.random.Generator, train_id: int) -> Cycle:
        """Draw the size and colour of a bicycle or motorcycle."""
        if train_id == BICYCLE:
            return Cycle(
                train_id, rng.uniform(0.32, 0.36), rng.uniform(1.0, 1.12), pick(rng, METALS + CLOTHES, 0.1)
            )
        return Cycle(train_id, rng.uniform(0.29, 0.33), rng.uniform(1.3, 1.5), pick(rng, VEHICLE_PAINTS, 0.1))

    @property
    def seat_height(self) -> float:
        """Height of the saddle above the ground."""
        return self.radius + (0.55 if self.train_id == BICYCLE else 0.45)

    def shapes(self) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
        """Tyres, rims and frame/body polygons in the (s, y) frame, rear hub at s = 0."""
        r, wb = self.radius, self.wheelbase
        tyres = [ellipse_points(s, r, r, r, 16) for s in (0.0, wb)]
        rims = [ellipse_points(s, r, 0.8 * r, 0.8 * r, 16) for s in (0.0, wb)]
        if self.train_id == BICYCLE:
            rear, crank = (0.0, r), (0.42 * wb, r - 0.04)
            seat, head = (0.3 * wb, r + 0.5), (0.85 * wb, r + 0.52)
            bar = (0.8 * wb, r + 0.68)
            tubes = [
                (rear, crank),
                (crank, seat),
                (seat, rear),
                (seat, head),
                (crank, head),
                (head, (wb, r)),
                (head, bar),
                ((0.24 * wb, r + 0.55), (0.36 * wb, r + 0.55)),
            ]
            body = [thick_segment(p0, p1, 0.045) for p0, p1 in tubes]
        else:
            body = [
                np.array(
                    [
                        (-0.05, r + 0.25),
                        (0.15 * wb, r + 0.45),
                        (0.5 * wb, r + 0.42),
                        (0.62 * wb, r + 0.6),
                        (0.82 * wb, r + 0.62),
                        (0.95 * wb, r + 0.3),
                        (0.7 * wb, r - 0.05),
                        (0.35 * wb, r - 0.1),
                    ]
                ),
                thick_segment((0.8 * wb, r + 0.62), (wb, r), 0.06),
                thick_segment((0.78 * wb, r + 0.75), (0.82 * wb, r + 0.58), 0.05),
            ]
        return tyres, rims, body

    def draw(
        self,
        painter: Painter,
        place: Callable[[np.ndarray], np.ndarray],
        depth: float,
        instance: int,
        normal: Normal,
    ) -> None:
        """Fill the cycle's polygons, mapped to world space by ``place`` ((N, 2) -> (N, 3))."""
        tyres, rims, body = self.shapes()

        def mat(color: Color, texture: tuple[float, float, float]) -> int:
            return painter.material(
                self.train_id, color, texture, normal=normal, depth=depth, instance=instance
            )

        tyre, rim, frame = (
            mat((0.05, 0.05, 0.05), SMOOTH),
            mat((0.32, 0.33, 0.34), METAL),
            mat(self.frame, METAL),
        )
        painter.fill([place(p) for p in tyres], tyre)
        painter.fill([place(p) for p in rims], rim)
        painter.fill([place(p) for p in body], frame)


@dataclass(frozen=True)
class Rider(WorldObject):
    """A person riding a bicycle or motorcycle along z, seen from behind or in front."""

    x: float
    z0: float
    speed: float
    heading: int
    cycle: Cycle
    outfit: Outfit

    def extent(self, t: float) -> Extent:
        z = self.z0 + self.speed * t
        return Extent(self.x - 0.35, self.x + 0.35, z, z + self.cycle.wheelbase, self.cycle.seat_height + 1.0)

    def cast_shadow(self, painter: Painter, t: float) -> None:
        z = self.z0 + self.speed * t + self.cycle.wheelbase / 2
        painter.shadow(
            [upright_shadow(self.x, z, 0.5, self.cycle.seat_height + 0.8, painter.look.sun_direction)]
        )

    def draw(self, painter: Painter, t: float) -> None:
        z = self.z0 + self.speed * t
        wb = self.cycle.wheelbase
        depth = painter.camera.depth_of(np.array([self.x, 1.0, z + wb / 2]))
        side = 1.0 if painter.camera_position[0] > self.x else -1.0

        def place(points: np.ndarray) -> np.ndarray:
            s = points[:, 0] if self.heading > 0 else wb - points[:, 0]
            return side_polygon(self.x, np.column_stack([z + s, points[:, 1]]))

        self.cycle.draw(painter, place, depth, painter.new_instance(self.cycle.train_id), (side, 0.0, 0.0))
        rider_z = z + wb * (0.3 if self.heading > 0 else 0.7)
        instance = painter.new_instance(RIDER)
        draw_figure(
            painter,
            self.outfit,
            self.x,
            rider_z,
            self.cycle.seat_height,
            0.0,
            RIDER,
            depth,
            instance,
            sitting=True,
        )
        if self.cycle.train_id == MOTORCYCLE:
            h = self.outfit.height
            helmet_y = self.cycle.seat_height + 0.41 * h
            helmet = painter.material(
                RIDER, self.cycle.frame * 0.8, SMOOTH, normal=TOWARDS_CAMERA, depth=depth, instance=instance
            )
            painter.fill(
                [billboard(rider_z, ellipse_points(self.x, helmet_y, 0.075 * h, 0.08 * h, 14))], helmet
            )


@dataclass(frozen=True)
class ParkedCycle(WorldObject):
    """A bicycle or motorcycle parked across the sidewalk, seen from the side."""

    x: float
    z: float
    cycle: Cycle
    base: float

    def extent(self, t: float) -> Extent:
        return Extent(self.x, self.x + self.cycle.wheelbase, self.z - 0.1, self.z + 0.1, 1.2)

    def draw(self, painter: Painter, t: float) -> None:
        depth = painter.camera.depth_of(np.array([self.x, 0.5, self.z]))

        def place(points: np.ndarray) -> np.ndarray:
            return billboard(self.z, np.column_stack([self.x + points[:, 0], points[:, 1] + self.base]))

        self.cycle.draw(painter, place, depth, painter.new_instance(self.cycle.train_id), TOWARDS_CAMERA)
