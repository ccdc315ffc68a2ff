"""Cars, trucks, buses and trams: boxes with shaded faces, glass, lights and wheels."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bialign_ros.classes import CITYSCAPES_NAMES
from bialign_ros.synthetic.objects import (
    GLASS_TONES,
    VEHICLE_PAINTS,
    Color,
    Extent,
    WorldObject,
    hull_shadow,
    jitter,
    pick,
)
from bialign_ros.synthetic.raster import Box, Face, Painter, side_polygon
from bialign_ros.synthetic.textures import GLASS, METAL, SMOOTH

CAR, TRUCK, BUS, TRAIN = (CITYSCAPES_NAMES.index(n) for n in ("car", "truck", "bus", "train"))

TYRE = (0.05, 0.05, 0.055)
RIM = (0.45, 0.46, 0.47)
TAIL_LIGHT = (0.75, 0.06, 0.05)
HEAD_LIGHT = (0.85, 0.85, 0.78)
PLATE = (0.88, 0.88, 0.85)
TRIM = (0.08, 0.08, 0.09)
DETAIL_PIXELS = 8.0
"""Vehicles narrower than this many pixels are drawn without glass, lights and wheels."""


@dataclass(frozen=True)
class Vehicle(WorldObject):
    """A road vehicle of class car, truck, bus or train (tram), driving along z.

    ``z0`` is its smallest z at time 0; ``heading`` +1 drives towards +z (rear seen from a
    camera behind it), -1 towards the camera (front seen).
    """

    train_id: int
    x: float
    z0: float
    speed: float
    heading: int
    length: float
    width: float
    body_top: float
    roof: float
    paint: np.ndarray
    second: np.ndarray
    glass: np.ndarray

    @staticmethod
    def sample(
        rng: np.random.Generator, train_id: int, x: float, z0: float, speed: float, heading: int
    ) -> Vehicle:
        """Draw the size and colours of a vehicle of the given class."""
        paint = pick(rng, VEHICLE_PAINTS, 0.1)
        glass = pick(rng, GLASS_TONES, 0.15)
        if train_id == CAR:
            tall = rng.random() < 0.25
            length, width = rng.uniform(3.8, 4.9), rng.uniform(1.7, 1.95)
            body_top = rng.uniform(1.0, 1.2) if tall else rng.uniform(0.85, 1.0)
            roof = body_top + (rng.uniform(0.6, 0.75) if tall else rng.uniform(0.45, 0.6))
            second = paint
        elif train_id == TRUCK:
            length, width = rng.uniform(6.5, 10.0), rng.uniform(2.3, 2.55)
            body_top, roof = rng.uniform(2.6, 3.0), rng.uniform(3.3, 4.0)
            second = pick(rng, [(0.9, 0.9, 0.9), (0.6, 0.6, 0.62), (0.2, 0.3, 0.55), (0.7, 0.2, 0.15)], 0.1)
        elif train_id == BUS:
            length, width = rng.uniform(10.5, 12.5), rng.uniform(2.45, 2.55)
            body_top, roof = 1.1, rng.uniform(2.95, 3.2)
            paint = pick(
                rng,
                [(0.95, 0.78, 0.1), (0.9, 0.9, 0.88), (0.75, 0.12, 0.1), (0.15, 0.3, 0.6), (0.2, 0.5, 0.3)],
                0.08,
            )
            second = jitter(rng, (0.25, 0.25, 0.27), 0.2)
        else:
            length, width = rng.uniform(22.0, 30.0), rng.uniform(2.3, 2.65)
            body_top, roof = 1.0, rng.uniform(3.3, 3.6)
            paint = pick(
                rng, [(0.92, 0.92, 0.9), (0.8, 0.15, 0.12), (0.95, 0.8, 0.2), (0.2, 0.35, 0.65)], 0.08
            )
            second = jitter(rng, (0.3, 0.3, 0.32), 0.2)
        return Vehicle(train_id, x, z0, speed, heading, length, width, body_top, roof, paint, second, glass)

    def extent(self, t: float) -> Extent:
        z = self.z0 + self.speed * t
        return Extent(self.x - self.width / 2, self.x + self.width / 2, z, z + self.length, self.roof)

    def _z(self, t: float, s0: float, s1: float) -> tuple[float, float]:
        """World z range of the vehicle-frame span [s0, s1] (s measured from the rear)."""
        z = self.z0 + self.speed * t
        if self.heading > 0:
            return z + s0, z + s1
        return z + self.length - s1, z + self.length - s0

    def cast_shadow(self, painter: Painter, t: float) -> None:
        e = self.extent(t)
        corners = np.array([[e.x0, e.z0], [e.x1, e.z0], [e.x1, e.z1], [e.x0, e.z1]])
        h = 0.8 * self.roof
        painter.shadow([hull_shadow(corners, [h] * 4, painter.look.sun_direction)])

    def draw(self, painter: Painter, t: float) -> None:
        eye = painter.camera_position
        e = self.extent(t)
        depth = painter.camera.depth_of(np.array([self.x, 1.0, (e.z0 + e.z1) / 2]))
        instance = painter.new_instance(self.train_id)
        detailed = painter.pixels(self.width, depth) >= DETAIL_PIXELS
        parts = self._parts(t)
        parts.sort(key=lambda part: -part[0].footprint_distance(eye))
        for box, color, role in parts:
            for face in box.visible_faces(eye):
                mat = painter.material(
                    self.train_id, color, SMOOTH, normal=face.normal, depth=depth, instance=instance
                )
                painter.fill([face.polygon()], mat)
                if detailed:
                    self._face_details(painter, face, role, depth, instance)
        if detailed:
            self._wheels(painter, t, depth, instance)

    def _parts(self, t: float) -> list[tuple[Box, np.ndarray, str]]:
        x0, x1 = self.x - self.width / 2, self.x + self.width / 2
        L = self.length
        if self.train_id == CAR:
            inset = 0.1
            return [
                (Box(x0, x1, 0.3, self.body_top, *self._z(t, 0, L)), self.paint, "body"),
                (
                    Box(x0 + inset, x1 - inset, self.body_top, self.roof, *self._z(t, 0.2 * L, 0.72 * L)),
                    self.paint,
                    "cabin",
                ),
            ]
        if self.train_id == TRUCK:
            return [
                (Box(x0 + 0.1, x1 - 0.1, 0.5, 1.0, *self._z(t, 0, L)), self.second * 0.3, "chassis"),
                (Box(x0, x1, 0.9, self.roof, *self._z(t, 0, L - 2.6)), self.second, "cargo"),
                (Box(x0, x1, 0.5, self.body_top, *self._z(t, L - 2.3, L)), self.paint, "cab"),
            ]
        return [(Box(x0, x1, 0.35, self.roof, *self._z(t, 0, L)), self.paint, "coach")]

    def _is_front(self, face: Face) -> bool:
        return (face.normal[2] > 0) == (self.heading > 0)

    def _face_details(self, painter: Painter, face: Face, role: str, depth: float, instance: int) -> None:
        """Glass, lights and plates on one visible face of a vehicle part."""

        def mat(color: Color, texture: tuple[float, float, float] = SMOOTH) -> int:
            return painter.material(
                self.train_id, color, texture, normal=face.normal, depth=depth, instance=instance
            )

        w, h = face.s_size, face.t_size
        glass = mat(self.glass, GLASS)
        if face.normal[1] > 0:
            return
        along_z = face.normal[2] != 0
        front = along_z and self._is_front(face)
        if role == "cabin":
            if along_z:
                painter.fill([face.rect(0.08, w - 0.08, 0.06, h - 0.05)], glass)
            else:
                gap = 0.1
                painter.fill_disjoint(
                    face.rects(
                        np.array(
                            [[0.1, w / 2 - gap, 0.08, h - 0.06], [w / 2 + gap, w - 0.15, 0.08, h - 0.06]]
                        )
                    ),
                    glass,
                )
        elif role == "body" and along_z:
            lights = mat(HEAD_LIGHT if front else TAIL_LIGHT)
            painter.fill_disjoint(
                face.rects(
                    np.array([[0.1, 0.45, h - 0.28, h - 0.12], [w - 0.45, w - 0.1, h - 0.28, h - 0.12]])
                ),
                lights,
            )
            painter.fill([face.rect(w / 2 - 0.26, w / 2 + 0.26, 0.12, 0.24)], mat(PLATE))
            painter.fill([face.rect(0.0, w, 0.0, 0.08)], mat(TRIM))
            painter.fill_disjoint(
                face.rects(np.array([[0.08, 0.32, -0.3, 0.0], [w - 0.32, w - 0.08, -0.3, 0.0]])), mat(TYRE)
            )
        elif role == "cab" and along_z and front:
            painter.fill([face.rect(0.12, w - 0.12, h * 0.45, h - 0.15)], glass)
            painter.fill_disjoint(
                face.rects(np.array([[0.1, 0.4, 0.2, 0.4], [w - 0.4, w - 0.1, 0.2, 0.4]])), mat(HEAD_LIGHT)
            )
        elif role == "cab" and not along_z:
            painter.fill([face.rect(0.3, min(1.3, w - 0.2), h * 0.5, h - 0.2)], glass)
        elif role == "cargo" and along_z and not front:
            painter.fill([face.rect(w / 2 - 0.02, w / 2 + 0.02, 0.1, h - 0.1)], mat(self.second * 0.5, METAL))
            painter.fill_disjoint(
                face.rects(np.array([[0.05, 0.3, 0.05, 0.2], [w - 0.3, w - 0.05, 0.05, 0.2]])),
                mat(TAIL_LIGHT),
            )
        elif role == "coach":
            self._coach_details(painter, face, mat, glass, front)

    def _coach_details(
        self, painter: Painter, face: Face, mat: Callable[[Color], int], glass: int, front: bool
    ) -> None:
        """Window bands, doors and the skirt of buses and trams."""
        w, h = face.s_size, face.t_size
        painter.fill([face.rect(0.0, w, 0.0, 0.35)], mat(self.second))
        if face.normal[2] != 0:
            top = h - 0.15
            bottom = 0.55 if front else h * 0.5
            painter.fill([face.rect(0.1, w - 0.1, bottom, top)], glass)
            lamp = HEAD_LIGHT if front else TAIL_LIGHT
            painter.fill_disjoint(
                face.rects(np.array([[0.1, 0.4, 0.45, 0.6], [w - 0.4, w - 0.1, 0.45, 0.6]])), mat(lamp)
            )
            if front:
                painter.fill([face.rect(0.3, w - 0.3, h - 0.12, h - 0.02)], mat((0.9, 0.55, 0.1)))
            return
        pane = 1.5
        starts = np.arange(1.2, w - 1.5, pane)
        bounds = np.column_stack(
            [starts, starts + pane - 0.12, np.full(len(starts), h * 0.36), np.full(len(starts), h - 0.25)]
        )
        painter.fill_disjoint(face.rects(bounds), glass)
        painter.fill([face.rect(2.0, 3.2, 0.1, h - 0.3)], glass)

    def _wheels(self, painter: Painter, t: float, depth: float, instance: int) -> None:
        """Tyres and rims on the side of the vehicle that faces the camera."""
        eye = painter.camera_position
        if abs(eye[0] - self.x) < self.width / 2:
            return
        side = 1.0 if eye[0] > self.x else -1.0
        x = self.x + side * (self.width / 2 + 0.02)
        radius = 0.33 if self.train_id == CAR else 0.5
        L = self.length
        if self.train_id == CAR:
            axles = [0.18 * L, 0.8 * L]
        elif self.train_id == TRUCK:
            axles = [0.15 * L, 0.32 * L, L - 1.4]
        elif self.train_id == BUS:
            axles = [2.6, L - 2.4]
        else:
            axles = [2.0, 3.8, L / 2 - 0.9, L / 2 + 0.9, L - 3.8, L - 2.0]
        normal = (side, 0.0, 0.0)
        tyre = painter.material(self.train_id, TYRE, SMOOTH, normal=normal, depth=depth, instance=instance)
        rim = painter.material(self.train_id, RIM, METAL, normal=normal, depth=depth, instance=instance)
        z0 = self.z0 + self.speed * t
        for s in axles:
            zc = z0 + (s if self.heading > 0 else L - s)
            a = np.linspace(0.0, 2 * np.pi, 14, endpoint=False)
            disc = np.column_stack([zc + radius * np.cos(a), radius + radius * np.sin(a)])
            painter.fill([side_polygon(x, disc)], tyre)
            inner = np.column_stack([zc + 0.55 * radius * np.cos(a), radius + 0.55 * radius * np.sin(a)])
            painter.fill([side_polygon(x + side * 0.01, inner)], rim)
