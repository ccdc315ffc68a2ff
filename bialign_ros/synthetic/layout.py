"""The cross-section and style of one street, drawn once per scene from its seed.

The camera drives in the rightmost forward lane, whose centre is x = 0. Forward lanes extend
to the left of it, then the oncoming lanes; shoulders (parking or a bike lane), curbs,
sidewalks, an optional setback and the frontage (buildings or parks) follow on each side.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bialign_ros.synthetic.objects import CONCRETE_TONES, FACADES, jitter, pick

PARKING, BIKE_LANE, NO_SHOULDER = "parking", "bike", "none"
SHOULDER_WIDTH = {PARKING: 2.2, BIKE_LANE: 1.6, NO_SHOULDER: 0.4}


@dataclass(frozen=True)
class Side:
    """One side of the street; ``sign`` is +1 on the right and -1 on the left."""

    sign: int
    lanes_edge: float
    shoulder: str
    verge: float
    sidewalk: float
    setback: float
    setback_grass: bool
    building_rate: float
    edge_rate: float
    tree_spacing: float | None
    pedestrian_rate: float
    heading: int

    @property
    def curb(self) -> float:
        """x of the curb line between the road and the sidewalk."""
        return self.lanes_edge + self.sign * SHOULDER_WIDTH[self.shoulder]

    @property
    def paving_inner(self) -> float:
        """x where the paved sidewalk begins (after an optional grass verge along the curb)."""
        return self.curb + self.sign * self.verge

    @property
    def sidewalk_outer(self) -> float:
        """x of the outer edge of the sidewalk."""
        return self.curb + self.sign * (self.verge + self.sidewalk)

    @property
    def frontage(self) -> float:
        """x of the building line."""
        return self.sidewalk_outer + self.sign * self.setback

    @property
    def shoulder_centre(self) -> float:
        """x of the middle of the shoulder (parked cars, bike lane)."""
        return self.lanes_edge + self.sign * SHOULDER_WIDTH[self.shoulder] / 2


@dataclass(frozen=True)
class StreetLayout:
    """Lanes, sides, colours and traffic densities of a street."""

    lane_width: float
    lanes_forward: int
    lanes_backward: int
    right: Side
    left: Side
    curb_height: float
    tram_lane: int | None
    lamp_spacing: float
    lamp_phase: float
    sign_rate: float
    crossing_rate: float
    traffic_rate: float
    ego_speed: float
    lane_speeds: tuple[float, ...]
    building_heights: tuple[float, float]
    facade_palette: tuple[tuple[float, float, float], ...]
    asphalt: np.ndarray
    marking: np.ndarray
    paving: np.ndarray
    curb_color: np.ndarray
    grass: np.ndarray
    double_centre_line: bool
    bike_lane_color: np.ndarray

    @staticmethod
    def sample(rng: np.random.Generator) -> StreetLayout:
        """Draw a street: lane counts and widths, sides, colours and densities."""
        lanes_forward = int(rng.choice([1, 1, 2]))
        lanes_backward = int(rng.choice([0, 1, 1, 2]))
        lane_width = rng.uniform(2.9, 3.6)
        urban = rng.uniform(0.3, 1.0)
        green = rng.uniform(0.0, 1.0)
        lanes_left_edge = -(lanes_forward + lanes_backward - 0.5) * lane_width

        def side(sign: int, lanes_edge: float, heading: int) -> Side:
            shoulder = str(rng.choice([PARKING, PARKING, BIKE_LANE, NO_SHOULDER]))
            setback = 0.0 if rng.random() < 0.5 else rng.uniform(1.0, 5.0)
            return Side(
                sign=sign,
                lanes_edge=lanes_edge,
                shoulder=shoulder,
                verge=0.0 if rng.random() < 0.65 else rng.uniform(0.8, 2.5),
                sidewalk=rng.uniform(2.0, 5.0),
                setback=setback,
                setback_grass=bool(rng.random() < 0.7),
                building_rate=float(np.clip(urban + rng.uniform(-0.2, 0.2), 0.1, 0.97)),
                edge_rate=rng.uniform(0.1, 0.7),
                tree_spacing=rng.uniform(7.0, 16.0) if rng.random() < 0.4 + 0.5 * green else None,
                pedestrian_rate=rng.uniform(0.02, 0.15) * (0.5 + urban),
                heading=heading,
            )

        right = side(1, lane_width / 2, 1)
        left = side(-1, lanes_left_edge, -1 if lanes_backward else 1)
        tram_lane = None
        if rng.random() < 0.3:
            if lanes_backward:
                tram_lane = lanes_forward
            elif lanes_forward > 1:
                tram_lane = 1
        ego_speed = rng.uniform(4.0, 13.0)
        speeds = [ego_speed] + [ego_speed * rng.uniform(0.6, 1.4) for _ in range(lanes_forward - 1)]
        speeds += [-rng.uniform(5.0, 14.0) for _ in range(lanes_backward)]
        low = rng.uniform(6.0, 14.0)
        palette_idx = rng.choice(len(FACADES), size=int(rng.integers(3, 7)), replace=False)
        asphalt = np.array([0.33, 0.33, 0.34]) * rng.uniform(0.7, 1.3) + rng.uniform(-0.02, 0.02, 3)
        return StreetLayout(
            lane_width=lane_width,
            lanes_forward=lanes_forward,
            lanes_backward=lanes_backward,
            right=right,
            left=left,
            curb_height=rng.uniform(0.1, 0.16),
            tram_lane=tram_lane,
            lamp_spacing=rng.uniform(18.0, 35.0),
            lamp_phase=rng.uniform(0.0, 35.0),
            sign_rate=rng.uniform(0.01, 0.05),
            crossing_rate=rng.uniform(0.1, 0.4),
            traffic_rate=rng.uniform(0.005, 0.03),
            ego_speed=ego_speed,
            lane_speeds=tuple(speeds),
            building_heights=(low, low + rng.uniform(4.0, 22.0)),
            facade_palette=tuple(FACADES[int(i)] for i in palette_idx),
            asphalt=asphalt,
            marking=jitter(rng, (0.85, 0.85, 0.82), 0.1),
            paving=pick(rng, CONCRETE_TONES + [(0.6, 0.45, 0.42), (0.7, 0.68, 0.66)], 0.1),
            curb_color=jitter(rng, (0.7, 0.7, 0.68), 0.1),
            grass=pick(
                rng, [(0.33, 0.45, 0.2), (0.45, 0.5, 0.25), (0.55, 0.5, 0.35), (0.42, 0.36, 0.28)], 0.12
            ),
            double_centre_line=bool(rng.random() < 0.5),
            bike_lane_color=jitter(rng, (0.55, 0.3, 0.28), 0.15),
        )

    def lane_centre(self, lane: int) -> float:
        """x of the centre of ``lane``: 0 is the camera's lane, forward lanes first, then oncoming."""
        return -lane * self.lane_width

    def lane_heading(self, lane: int) -> int:
        """+1 for forward lanes, -1 for oncoming lanes."""
        return 1 if lane < self.lanes_forward else -1

    @property
    def num_lanes(self) -> int:
        """Total number of driving lanes."""
        return self.lanes_forward + self.lanes_backward

    @property
    def sides(self) -> tuple[Side, Side]:
        """The right and the left side."""
        return self.right, self.left
