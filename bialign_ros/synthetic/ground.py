"""The ground: road with lane markings, curbs, sidewalks and terrain, drawn before anything standing."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bialign_ros.classes import CITYSCAPES_NAMES
from bialign_ros.synthetic.layout import BIKE_LANE, StreetLayout
from bialign_ros.synthetic.objects import Color
from bialign_ros.synthetic.raster import Painter, ground_rect
from bialign_ros.synthetic.textures import ASPHALT, GRASS, PAVING, SMOOTH

ROAD, SIDEWALK, TERRAIN = (CITYSCAPES_NAMES.index(n) for n in ("road", "sidewalk", "terrain"))
GROUND_FAR = 1500.0
"""How far ahead (metres) the ground planes reach, well past the haze."""
LATERAL_FAR = 300.0
MARKING_RANGE = 160.0
JOINT_RANGE = 30.0
UP = (0.0, 1.0, 0.0)


@dataclass(frozen=True)
class GroundPatch:
    """A flat polygon on the ground with its own class and colour (markings, crossings, patches)."""

    train_id: int
    polygon: np.ndarray
    color: np.ndarray
    texture: tuple[float, float, float]


def _dashes(x: float, width: float, z_lo: float, z_hi: float, period: float, duty: float, y: float) -> list:
    """Dashed line along z anchored to the world, so dashes move past a moving camera."""
    start = np.floor(z_lo / period) * period
    return [
        ground_rect(x - width / 2, x + width / 2, z, z + period * duty, y)
        for z in np.arange(start, z_hi, period)
    ]


def draw_ground(painter: Painter, layout: StreetLayout, cam_z: float, patches: list[GroundPatch]) -> None:
    """Draw terrain, sidewalks, curbs, road, markings and ground patches for a camera at ``cam_z``."""
    z_lo, z_hi = cam_z - 5.0, cam_z + GROUND_FAR
    curb_h = layout.curb_height

    def mat(train_id: int, color: Color, texture: tuple[float, float, float]) -> int:
        return painter.material(train_id, color, texture, normal=UP, ground=True)

    grass = mat(TERRAIN, layout.grass, GRASS)
    paving = mat(SIDEWALK, layout.paving, PAVING)
    for side in layout.sides:
        s = side.sign
        painter.fill([ground_rect(side.sidewalk_outer, s * LATERAL_FAR, z_lo, z_hi, curb_h)], grass)
        if side.setback and not side.setback_grass:
            painter.fill([ground_rect(side.sidewalk_outer, side.frontage, z_lo, z_hi, curb_h)], paving)
        painter.fill([ground_rect(side.paving_inner, side.sidewalk_outer, z_lo, z_hi, curb_h)], paving)
        if side.verge:
            painter.fill([ground_rect(side.curb, side.paving_inner, z_lo, z_hi, curb_h)], grass)
        curb_face = np.array(
            [
                [side.curb, 0.0, z_lo],
                [side.curb, curb_h, z_lo],
                [side.curb, curb_h, z_hi],
                [side.curb, 0.0, z_hi],
            ]
        )
        painter.fill(
            [curb_face],
            painter.material(SIDEWALK, layout.curb_color, PAVING, normal=(-s, 0.0, 0.0), ground=True),
        )
        joints = [
            ground_rect(side.paving_inner, side.sidewalk_outer, z, z + 0.05, curb_h + 0.001)
            for z in np.arange(np.ceil(cam_z), cam_z + JOINT_RANGE, 1.5)
        ]
        painter.fill_disjoint(joints, mat(SIDEWALK, layout.paving * 0.75, PAVING))

    road = mat(ROAD, layout.asphalt, ASPHALT)
    painter.fill([ground_rect(layout.left.curb, layout.right.curb, z_lo, z_hi)], road)
    for side in layout.sides:
        if side.shoulder == BIKE_LANE:
            painter.fill(
                [
                    ground_rect(
                        min(side.lanes_edge, side.curb), max(side.lanes_edge, side.curb), z_lo, z_hi, 0.002
                    )
                ],
                mat(ROAD, layout.bike_lane_color, ASPHALT),
            )

    for patch in patches:
        painter.fill([patch.polygon], mat(patch.train_id, patch.color, patch.texture))

    paint = mat(ROAD, layout.marking, SMOOTH)
    lw = layout.lane_width
    z_mark = cam_z + MARKING_RANGE
    lines = []
    for lane in range(layout.num_lanes - 1):
        x = -(lane + 0.5) * lw
        if lane == layout.lanes_forward - 1:
            if layout.double_centre_line:
                lines += [
                    ground_rect(x - 0.2, x - 0.08, z_lo, z_mark, 0.003),
                    ground_rect(x + 0.08, x + 0.2, z_lo, z_mark, 0.003),
                ]
            else:
                lines.append(ground_rect(x - 0.07, x + 0.07, z_lo, z_mark, 0.003))
        else:
            lines += _dashes(x, 0.13, z_lo, z_mark, 9.0, 0.35, 0.003)
    for edge in (layout.right.lanes_edge, layout.left.lanes_edge):
        lines.append(ground_rect(edge - 0.06, edge + 0.06, z_lo, z_mark, 0.003))
    painter.fill_disjoint(lines, paint)
    if layout.tram_lane is not None:
        x = layout.lane_centre(layout.tram_lane)
        rails = [ground_rect(x + dx - 0.04, x + dx + 0.04, z_lo, z_mark, 0.004) for dx in (-0.72, 0.72)]
        painter.fill_disjoint(rails, mat(ROAD, (0.5, 0.5, 0.52), SMOOTH))


def chunk_patches(rng: np.random.Generator, layout: StreetLayout, z0: float, z1: float) -> list[GroundPatch]:
    """Repairs, manholes and parking-bay lines of one stretch of road."""
    patches = []
    for _ in range(int(rng.poisson(1.5))):
        x = rng.uniform(layout.left.curb + 1.0, layout.right.curb - 1.0)
        z = rng.uniform(z0, z1 - 4.0)
        w, length = rng.uniform(0.8, 3.0), rng.uniform(1.0, 4.0)
        patches.append(
            GroundPatch(
                ROAD,
                ground_rect(x, x + w, z, z + length, 0.001),
                layout.asphalt * rng.uniform(0.75, 1.15),
                ASPHALT,
            )
        )
    for _ in range(int(rng.poisson(0.7))):
        x = rng.uniform(layout.left.lanes_edge, layout.right.lanes_edge)
        z = rng.uniform(z0, z1)
        a = np.linspace(0, 2 * np.pi, 12, endpoint=False)
        disc = np.column_stack([x + 0.35 * np.cos(a), np.full(12, 0.002), z + 0.35 * np.sin(a)])
        patches.append(GroundPatch(ROAD, disc, np.array([0.22, 0.22, 0.23]) * rng.uniform(0.8, 1.3), SMOOTH))
    return patches


def crossing_patches(layout: StreetLayout, z: float) -> list[GroundPatch]:
    """Zebra stripes across all lanes at ``z``."""
    x0, x1 = layout.left.lanes_edge, layout.right.lanes_edge
    starts = np.arange(x0 + 0.3, x1 - 0.5, 1.0)
    return [
        GroundPatch(ROAD, ground_rect(x, x + 0.5, z, z + 3.5, 0.004), layout.marking, SMOOTH) for x in starts
    ]
