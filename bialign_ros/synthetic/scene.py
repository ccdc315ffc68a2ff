"""A procedural street: its layout, the objects along it (made lazily in 40 m chunks) and rendering.

Everything is a pure function of the seed: each chunk draws from its own random stream, so a
frame depends only on the seed, the camera pose, the time and the image size, never on which
frames were rendered before.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bialign_ros.classes import IGNORE_INDEX
from bialign_ros.synthetic.buildings import BUILDING, Building
from bialign_ros.synthetic.camera import NEAR_PLANE, Camera
from bialign_ros.synthetic.frame import SceneFrame
from bialign_ros.synthetic.ground import GroundPatch, chunk_patches, crossing_patches, draw_ground
from bialign_ros.synthetic.layout import BIKE_LANE, PARKING, Side, StreetLayout
from bialign_ros.synthetic.objects import BACK, EDGE, FOLIAGE_TONES, STREET, WorldObject, pick
from bialign_ros.synthetic.people import BICYCLE, MOTORCYCLE, Cycle, Outfit, ParkedCycle, Pedestrian, Rider
from bialign_ros.synthetic.raster import Box, Painter, billboard, ellipse_points
from bialign_ros.synthetic.roadside import (
    VEGETATION,
    Fence,
    Hedge,
    SignPost,
    StreetLamp,
    TrafficLight,
    Tree,
    Wall,
    housing_color,
    lamp_color,
    sample_sign_shapes,
)
from bialign_ros.synthetic.textures import FACADE, FOLIAGE, SMOOTH, NoiseFields, SceneLook, compose_image
from bialign_ros.synthetic.vehicles import BUS, CAR, TRAIN, TRUCK, Vehicle

CHUNK = 40.0
"""Length (metres) of the stretches of street generated together."""
VIEW_FAR = 170.0
"""Objects farther ahead than this are not drawn (the backdrop stands beyond)."""
BACKDROP_DISTANCE = 230.0
BEHIND = 25.0
"""Objects this far behind the camera still cast shadows into view."""
MAX_SPEED = 15.0
EGO_GAP = 12.0
"""Vehicles in the camera's lane keep at least this distance (metres) ahead of it."""
MIN_PIXELS = 1.0
"""Objects whose nearest point would be smaller than this many pixels are skipped."""


def stream(seed: int, *keys: int) -> np.random.Generator:
    """An independent random stream for one part of one scene."""
    return np.random.default_rng(np.random.SeedSequence([seed, *keys]))


@dataclass(frozen=True)
class Chunk:
    """The objects and ground patches of one stretch [index * CHUNK, (index + 1) * CHUNK)."""

    objects: tuple[WorldObject, ...]
    patches: tuple[GroundPatch, ...]


@dataclass(frozen=True)
class Backdrop:
    """Distant buildings and tree lines that close the street's far end."""

    blocks: np.ndarray
    tones: np.ndarray

    @staticmethod
    def sample(rng: np.random.Generator, layout: StreetLayout) -> Backdrop:
        """Draw a skyline; the road's own width stays open so the street reaches the horizon."""
        blocks, tones = [], []
        for sign, start in ((1, layout.right.curb + 2.0), (-1, layout.left.curb - 2.0)):
            x = start
            while abs(x) < 260.0:
                w = rng.uniform(8.0, 30.0)
                is_tree = rng.random() < 0.3
                h = rng.uniform(6.0, 14.0) if is_tree else rng.uniform(8.0, 45.0)
                blocks.append((min(x, x + sign * w), max(x, x + sign * w), h, float(is_tree)))
                tones.append(
                    pick(rng, list(FOLIAGE_TONES), 0.1)
                    if is_tree
                    else pick(rng, list(layout.facade_palette), 0.15)
                )
                x += sign * w
        return Backdrop(np.array(blocks), np.array(tones))

    def draw(self, painter: Painter, cam_z: float) -> None:
        """Fill the skyline at a fixed distance ahead of the camera."""
        z = cam_z + BACKDROP_DISTANCE
        for (x0, x1, h, is_tree), tone in zip(self.blocks, self.tones):
            if is_tree:
                mat = painter.material(VEGETATION, tone, FOLIAGE, depth=BACKDROP_DISTANCE)
                n = max(2, int((x1 - x0) / 5))
                xs = np.linspace(x0, x1, n)
                painter.fill(
                    [billboard(z, ellipse_points(x, h * 0.6, (x1 - x0) / n, h * 0.45, 10)) for x in xs], mat
                )
            else:
                mat = painter.material(
                    BUILDING, tone, FACADE, normal=(0.0, 0.0, -1.0), depth=BACKDROP_DISTANCE
                )
                painter.fill([billboard(z, [(x0, 0.0), (x1, 0.0), (x1, h), (x0, h)])], mat)


class Street:
    """One procedural street scene: layout, look, lazily generated chunks and a renderer."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.layout = StreetLayout.sample(stream(seed, 0))
        self.look = SceneLook.sample(stream(seed, 1))
        self.backdrop = Backdrop.sample(stream(seed, 6), self.layout)
        self._chunks: dict[int, Chunk] = {}

    def chunk(self, index: int) -> Chunk:
        """The chunk ``index`` (cached; negative indices lie behind the start)."""
        if index not in self._chunks:
            rng = stream(self.seed, 4, index + (1 << 31))
            self._chunks[index] = build_chunk(rng, self.layout, index * CHUNK, (index + 1) * CHUNK)
        return self._chunks[index]

    def render(
        self, camera: Camera, t: float, fields: NoiseFields, noise_rng: np.random.Generator
    ) -> SceneFrame:
        """Render the street seen by ``camera`` at time ``t`` (seconds)."""
        painter = Painter(camera, self.look)
        eye = painter.camera_position
        cam_z = float(eye[2])
        reach = MAX_SPEED * t
        first = int(np.floor((cam_z - BEHIND - reach) / CHUNK))
        last = int(np.floor((cam_z + VIEW_FAR + reach) / CHUNK))
        chunks = [self.chunk(k) for k in range(first, last + 1)]
        near_chunks = [
            c
            for k, c in zip(range(first, last + 1), chunks)
            if cam_z - BEHIND - CHUNK <= k * CHUNK <= cam_z + VIEW_FAR
        ]
        draw_ground(painter, self.layout, cam_z, [p for c in near_chunks for p in c.patches])

        slope = camera.width / 2 / camera.focal * 1.4 + 0.1
        present = []
        for chunk in chunks:
            for obj in chunk.objects:
                e = obj.extent(t)
                if e.z1 < cam_z - BEHIND or e.z0 > cam_z + VIEW_FAR:
                    continue
                present.append((obj, e))
        if self.look.sunny:
            for obj, _ in present:
                obj.cast_shadow(painter, t)
        self.backdrop.draw(painter, cam_z)
        visible = []
        for obj, e in present:
            if e.z1 < cam_z + 0.3:
                continue
            reach_x = (e.z1 - cam_z) * slope + 2.0
            if e.x0 > eye[0] + reach_x or e.x1 < eye[0] - reach_x:
                continue
            if camera.focal * max(e.top, e.x1 - e.x0) < MIN_PIXELS * max(e.z0 - cam_z, NEAR_PLANE):
                continue
            visible.append(obj)
        for layer in (BACK, EDGE, STREET):
            group = [o for o in visible if o.layer == layer]
            group.sort(key=lambda o: -o.distance(eye, t))
            for obj in group:
                obj.draw(painter, t)

        painter.rasterise()
        hood = hood_shape(self.seed, camera.width, camera.height)
        if hood is not None:
            mat = painter.material(IGNORE_INDEX, (0.1, 0.1, 0.11), SMOOTH, normal=(0.0, 1.0, 0.0), depth=0.0)
            painter.fill_screen(hood, mat)

        table = painter.table
        train_lut = np.asarray(table.train_ids, dtype=np.uint8)
        instance_lut = np.asarray(table.instance_ids, dtype=np.uint16)
        image = compose_image(
            painter.surfaces,
            painter.shadows,
            table,
            float(eye[1]),
            camera.ray_y_coefficients(),
            self.look,
            fields,
            noise_rng,
        )
        return SceneFrame(
            image=image, train_ids=train_lut[painter.surfaces], instance_ids=instance_lut[painter.surfaces]
        )


def hood_shape(seed: int, width: int, height: int) -> np.ndarray | None:
    """Screen polygon of the ego vehicle's hood at the bottom of the image, or None (no hood)."""
    rng = stream(seed, 7)
    if rng.random() < 0.4:
        return None
    top = height * (1.0 - rng.uniform(0.04, 0.1))
    bulge = height * rng.uniform(0.01, 0.04)
    u = np.linspace(0.0, width, 33)
    v = top + bulge * ((2.0 * u / width - 1.0) ** 2)
    return np.column_stack([np.concatenate([u, [width, 0.0]]), np.concatenate([v, [height, height]])])


def build_chunk(rng: np.random.Generator, layout: StreetLayout, z0: float, z1: float) -> Chunk:
    """Place every object of one stretch of street."""
    objects: list[WorldObject] = []
    patches = chunk_patches(rng, layout, z0, z1)
    for side in layout.sides:
        objects += _frontage(rng, layout, side, z0, z1)
        objects += _sidewalk(rng, layout, side, z0, z1)
        objects += _shoulder(rng, layout, side, z0, z1)
    if rng.random() < layout.crossing_rate:
        zc = rng.uniform(z0 + 5.0, z1 - 8.0)
        patches += crossing_patches(layout, zc)
        objects += _crossing_lights(rng, layout, zc)
    for lane in range(layout.num_lanes):
        objects += _lane_traffic(rng, layout, lane, z0, z1)
    return Chunk(tuple(objects), tuple(patches))


def _frontage(rng: np.random.Generator, layout: StreetLayout, side: Side, z0: float, z1: float) -> list:
    """Buildings and parks beyond the sidewalk, and walls, fences or hedges along its edge."""
    s = side.sign
    base = layout.curb_height
    out: list[WorldObject] = []
    z = z0
    while z < z1 - 1.0:
        if rng.random() < side.building_rate:
            width = min(rng.uniform(6.0, 24.0), z1 - z)
            depth = rng.uniform(10.0, 25.0)
            height = rng.uniform(*layout.building_heights)
            x_in = side.frontage + s * rng.uniform(0.0, 0.6) * (rng.random() < 0.3)
            box = Box(min(x_in, x_in + s * depth), max(x_in, x_in + s * depth), base, height, z, z + width)
            out.append(Building.sample(rng, box, list(layout.facade_palette)))
            z += width
            if side.setback and rng.random() < side.edge_rate:
                out.append(_edge_object(rng, side, z - width, z, base))
            if rng.random() < 0.15:
                z += rng.uniform(2.0, 6.0)
        else:
            length = min(rng.uniform(10.0, 30.0), z1 - z)
            for _ in range(int(rng.poisson(length / 6.0))):
                x = side.sidewalk_outer + s * rng.uniform(2.0, 30.0)
                out.append(Tree.sample(rng, x, rng.uniform(z, z + length), base, rng.uniform(1.0, 1.8), BACK))
            x_line = side.sidewalk_outer + s * rng.uniform(30.0, 45.0)
            for zz in np.arange(z, z + length, 6.0):
                out.append(
                    Tree.sample(rng, x_line + s * rng.uniform(0, 5), zz + rng.uniform(0, 4), base, 1.8, BACK)
                )
            if rng.random() < side.edge_rate + 0.2:
                out.append(_edge_object(rng, side, z, z + length, base))
            z += length
    return out


def _edge_object(rng: np.random.Generator, side: Side, z0: float, z1: float, base: float) -> WorldObject:
    """A wall, fence or hedge along the outer edge of the sidewalk."""
    x = side.sidewalk_outer + side.sign * 0.2
    kind = rng.random()
    if kind < 0.35:
        return Wall.sample(rng, x, z0, z1, base)
    if kind < 0.75:
        return Fence.sample(rng, x, z0, z1, base)
    tone = pick(rng, FOLIAGE_TONES, 0.12)
    width = rng.uniform(0.6, 1.2)
    xs = sorted((x, x + side.sign * width))
    return Hedge(xs[0], xs[1], z0, z1, base, rng.uniform(0.7, 1.8), tone)


def _sidewalk(rng: np.random.Generator, layout: StreetLayout, side: Side, z0: float, z1: float) -> list:
    """Lamps, street trees, signs, pedestrians and parked bicycles on one sidewalk."""
    s = side.sign
    base = layout.curb_height
    out: list[WorldObject] = []
    first = np.ceil((z0 - layout.lamp_phase) / layout.lamp_spacing)
    for z in layout.lamp_phase + layout.lamp_spacing * np.arange(first, first + 4):
        if z0 <= z < z1:
            out.append(
                StreetLamp(
                    side.curb + s * (0.5 + side.verge / 2),
                    z,
                    base,
                    rng.uniform(6.0, 9.0),
                    -s * rng.uniform(0.8, 2.2),
                    lamp_color(rng),
                )
            )
    if side.tree_spacing:
        for z in np.arange(np.ceil(z0 / side.tree_spacing) * side.tree_spacing, z1, side.tree_spacing):
            if rng.random() < 0.85:
                x = side.curb + s * (side.verge / 2 if side.verge else rng.uniform(0.9, 1.4))
                out.append(Tree.sample(rng, x, z + rng.uniform(-1, 1), base))
    for _ in range(int(rng.poisson(layout.sign_rate * (z1 - z0)))):
        facing = -1 if s > 0 or rng.random() < 0.5 else 1
        out.append(
            SignPost(
                side.curb + s * 0.4,
                rng.uniform(z0, z1),
                base,
                rng.uniform(2.2, 3.0),
                sample_sign_shapes(rng),
                rng.uniform(0.55, 0.8),
                facing,
                lamp_color(rng),
            )
        )
    for _ in range(int(rng.poisson(side.pedestrian_rate * (z1 - z0)))):
        x = side.paving_inner + s * rng.uniform(0.6, max(0.7, side.sidewalk - 0.4))
        speed = 0.0 if rng.random() < 0.35 else rng.choice([-1.0, 1.0]) * rng.uniform(0.9, 1.7)
        out.append(
            Pedestrian(
                x,
                rng.uniform(z0, z1),
                float(speed),
                Outfit.sample(rng, rng.random() < 0.1),
                rng.uniform(0, 2 * np.pi),
                base,
            )
        )
    if rng.random() < 0.3:
        kind = BICYCLE if rng.random() < 0.7 else MOTORCYCLE
        z = rng.uniform(z0, z1 - 3.0)
        for i in range(int(rng.integers(1, 5))):
            cycle = Cycle.sample(rng, kind)
            # Parked across the sidewalk, back wheel 0.3 m from its outer edge.
            x = side.sidewalk_outer - 0.3 - cycle.wheelbase if s > 0 else side.sidewalk_outer + 0.3
            out.append(ParkedCycle(x, z + 0.7 * i, cycle, base))
    return out


def _shoulder(rng: np.random.Generator, layout: StreetLayout, side: Side, z0: float, z1: float) -> list:
    """Parked cars or cyclists on one shoulder."""
    out: list[WorldObject] = []
    x = side.shoulder_centre
    if side.shoulder == PARKING:
        z = z0 + rng.uniform(0.0, 6.0)
        while True:
            kind = CAR if rng.random() < 0.96 else TRUCK
            v = Vehicle.sample(rng, kind, x, z, 0.0, side.heading)
            if z + v.length > z1:
                break
            if rng.random() < 0.6:
                out.append(v)
            z += v.length + rng.uniform(1.0, 12.0)
    elif side.shoulder == BIKE_LANE:
        for _ in range(int(rng.poisson(0.6))):
            kind = BICYCLE if rng.random() < 0.8 else MOTORCYCLE
            speed = rng.uniform(3.0, 6.0) if kind == BICYCLE else rng.uniform(5.0, 9.0)
            out.append(
                Rider(
                    x,
                    rng.uniform(z0, z1 - 2.0),
                    side.heading * speed,
                    side.heading,
                    Cycle.sample(rng, kind),
                    Outfit.sample(rng),
                )
            )
    return out


def _crossing_lights(rng: np.random.Generator, layout: StreetLayout, zc: float) -> list:
    """Traffic lights at both curbs of a pedestrian crossing, and people waiting."""
    out: list[WorldObject] = []
    lit = int(rng.integers(3))
    for side in layout.sides:
        arm = -side.sign * rng.uniform(2.5, 5.0) if rng.random() < 0.5 else 0.0
        out.append(
            TrafficLight(
                side.curb + side.sign * 0.5,
                zc - 0.8,
                layout.curb_height,
                rng.uniform(2.6, 4.0),
                arm,
                housing_color(rng),
                lamp_color(rng),
                lit,
            )
        )
        for _ in range(int(rng.poisson(1.0))):
            out.append(
                Pedestrian(
                    side.curb + side.sign * rng.uniform(0.5, 1.5),
                    zc + rng.uniform(0.0, 3.5),
                    0.0,
                    Outfit.sample(rng),
                    0.0,
                    layout.curb_height,
                )
            )
    return out


def _lane_traffic(rng: np.random.Generator, layout: StreetLayout, lane: int, z0: float, z1: float) -> list:
    """Vehicles of one lane; all move at the lane's speed, so their gaps never close."""
    out: list[WorldObject] = []
    x = layout.lane_centre(lane)
    heading = layout.lane_heading(lane)
    speed = layout.lane_speeds[lane]
    if lane == layout.tram_lane and rng.random() < 0.35:
        tram = Vehicle.sample(rng, TRAIN, x, z0 + rng.uniform(0.0, 5.0), speed, heading)
        if tram.extent(0).z1 < z1:
            return [tram]
    z = z0 + rng.uniform(0.0, 15.0)
    while True:
        r = rng.random()
        kind = CAR if r < 0.85 else TRUCK if r < 0.91 else BUS if r < 0.96 else MOTORCYCLE
        if kind == MOTORCYCLE:
            v = Rider(x, z, speed, heading, Cycle.sample(rng, MOTORCYCLE), Outfit.sample(rng))
            length = v.cycle.wheelbase
        else:
            v = Vehicle.sample(rng, kind, x, z, speed, heading)
            length = v.length
        if z + length > z1:
            break
        if lane != 0 or z >= EGO_GAP:
            out.append(v)
        z += length + rng.exponential(1.0 / layout.traffic_rate) + 3.0
    return out
