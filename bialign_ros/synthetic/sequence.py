"""The ego camera's motion and the public rendering entry points: single scenes and sequences."""

from __future__ import annotations

import operator
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from bialign_ros.synthetic.camera import Camera
from bialign_ros.synthetic.frame import SceneFrame
from bialign_ros.synthetic.scene import Street, stream
from bialign_ros.synthetic.textures import NoiseFields

FRAME_RATE = 17.0
"""Frames per second of rendered sequences (the rate of the Cityscapes video snippets)."""
MIN_SIZE = 16


@dataclass(frozen=True)
class CameraPath:
    """Intrinsics and a smooth forward trajectory with gentle yaw, sway and vibration."""

    focal_ratio: float
    principal_offset: tuple[float, float]
    height: float
    pitch: float
    roll: float
    yaw: float
    speed: float
    sway: float
    yaw_swing: float
    periods: tuple[float, float, float]
    phases: tuple[float, float, float]

    @staticmethod
    def sample(rng: np.random.Generator, speed: float) -> CameraPath:
        """Draw a windscreen camera (Cityscapes-like field of view) driving at ``speed`` m/s."""
        return CameraPath(
            focal_ratio=rng.uniform(0.9, 1.2),
            principal_offset=(rng.uniform(-0.02, 0.02), rng.uniform(-0.03, 0.03)),
            height=rng.uniform(1.2, 1.6),
            pitch=np.radians(rng.uniform(0.5, 3.5)),
            roll=np.radians(rng.uniform(-1.0, 1.0)),
            yaw=np.radians(rng.uniform(-3.0, 3.0)),
            speed=speed,
            sway=rng.uniform(0.0, 0.3),
            yaw_swing=np.radians(rng.uniform(0.3, 1.5)),
            periods=(rng.uniform(3.0, 8.0), rng.uniform(2.0, 6.0), rng.uniform(0.2, 0.5)),
            phases=tuple(rng.uniform(0, 2 * np.pi, 3)),
        )

    def camera(self, t: float, height: int, width: int) -> Camera:
        """The camera at time ``t`` (seconds) for an image of ``height`` x ``width`` pixels."""
        p_sway, p_yaw, p_shake = self.periods
        f_sway, f_yaw, f_shake = self.phases
        x = self.sway * (np.sin(2 * np.pi * t / p_sway + f_sway) - np.sin(f_sway))
        yaw = self.yaw + self.yaw_swing * (np.sin(2 * np.pi * t / p_yaw + f_yaw) - np.sin(f_yaw))
        shake = np.sin(2 * np.pi * t / p_shake + f_shake)
        return Camera(
            width=width,
            height=height,
            focal=self.focal_ratio * width,
            cx=width * (0.5 + self.principal_offset[0]),
            cy=height * (0.5 + self.principal_offset[1]),
            position=(float(x), self.height + 0.01 * shake, self.speed * t),
            yaw=float(yaw),
            pitch=float(self.pitch + np.radians(0.1) * shake),
            roll=self.roll,
        )


def _check(seed: int, height: int, width: int) -> int:
    try:
        seed = operator.index(seed)
    except TypeError:
        raise TypeError(f"seed must be an integer, got {type(seed).__name__}") from None
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    for name, value in (("height", height), ("width", width)):
        if operator.index(value) < MIN_SIZE:
            raise ValueError(f"{name} must be at least {MIN_SIZE} pixels, got {value}")
    return seed


def render_sequence(seed: int, num_frames: int, height: int = 512, width: int = 1024) -> Iterator[SceneFrame]:
    """Yield ``num_frames`` consecutive frames of the street ``seed``, the camera driving forward.

    Frames are :data:`FRAME_RATE` apart; other road users move at their own speeds. The first
    frame equals ``render_scene(seed, height, width)``.
    """
    seed = _check(seed, height, width)
    if operator.index(num_frames) < 0:
        raise ValueError(f"num_frames must be non-negative, got {num_frames}")
    street = Street(seed)
    path = CameraPath.sample(stream(seed, 2), street.layout.ego_speed)
    fields = NoiseFields.sample(stream(seed, 3), height, width)
    for index in range(num_frames):
        t = index / FRAME_RATE
        yield street.render(path.camera(t, height, width), t, fields, stream(seed, 5, index))


def sequence_cameras(seed: int, num_frames: int, height: int = 512, width: int = 1024) -> list[Camera]:
    """The camera (intrinsics and pose) of each frame of ``render_sequence(seed, num_frames, ...)``."""
    seed = _check(seed, height, width)
    path = CameraPath.sample(stream(seed, 2), Street(seed).layout.ego_speed)
    return [path.camera(index / FRAME_RATE, height, width) for index in range(num_frames)]


def render_scene(seed: int, height: int = 512, width: int = 1024) -> SceneFrame:
    """Render one street scene; the same seed and size always give identical arrays."""
    return next(render_sequence(seed, 1, height, width))
