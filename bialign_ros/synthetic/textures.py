"""Materials, lighting and the photometric pipeline that turns a surface map into an RGB image.

Geometry is rasterised once, into a map of material indices; the label map and the image are
both read from that map, so every label pixel belongs to exactly the surface shown there.
Colour variation (per-object base colours, face shading, screen-space texture noise, haze,
shadows, exposure, white balance, sensor noise and blur) never touches the labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from bialign_ros.classes import CITYSCAPES_CLASSES, CITYSCAPES_NAMES

SKY = CITYSCAPES_NAMES.index("sky")

# Texture amplitudes (fine, medium, coarse) of the screen-space luminance noise per surface kind.
SMOOTH = (0.015, 0.02, 0.03)
GLASS = (0.02, 0.04, 0.10)
METAL = (0.03, 0.03, 0.06)
CLOTH = (0.04, 0.06, 0.05)
ASPHALT = (0.09, 0.05, 0.10)
PAVING = (0.06, 0.07, 0.08)
CONCRETE = (0.06, 0.06, 0.12)
FACADE = (0.04, 0.06, 0.12)
FOLIAGE = (0.12, 0.30, 0.15)
GRASS = (0.12, 0.16, 0.22)
MAX_MATERIALS = 65535


@dataclass(frozen=True)
class SceneLook:
    """Lighting, atmosphere and camera response of one scene (constant over a sequence)."""

    sun_direction: tuple[float, float, float]
    sunny: bool
    ambient: float
    sun_strength: float
    shadow_strength: float
    sky_horizon: tuple[float, float, float]
    sky_zenith: tuple[float, float, float]
    cloud_color: tuple[float, float, float]
    cloud_cover: float
    haze_color: tuple[float, float, float]
    haze_distance: float
    exposure: float
    contrast: float
    gamma: float
    white_balance: tuple[float, float, float]
    sensor_noise: float
    blur_sigma: float
    vignette: float

    @staticmethod
    def sample(rng: np.random.Generator) -> SceneLook:
        """Draw a plausible daylight look: sunny or overcast, with a random camera response."""
        sunny = bool(rng.random() < 0.6)
        azimuth = rng.uniform(-np.pi, np.pi)
        elevation = rng.uniform(0.35, 1.0)
        sun = (np.cos(elevation) * np.sin(azimuth), np.sin(elevation), np.cos(elevation) * np.cos(azimuth))
        if sunny:
            zenith = np.array([0.25, 0.45, 0.85]) * rng.uniform(0.8, 1.1) + rng.uniform(-0.05, 0.05, 3)
            horizon = np.array([0.75, 0.82, 0.92]) * rng.uniform(0.9, 1.05)
            cloud_cover = rng.uniform(0.0, 0.5)
        else:
            grey = rng.uniform(0.6, 0.9)
            zenith = np.full(3, grey) * rng.uniform(0.85, 1.0) + rng.uniform(-0.03, 0.03, 3)
            horizon = np.full(3, grey) * rng.uniform(1.0, 1.1)
            cloud_cover = rng.uniform(0.3, 1.0)
        haze = np.clip(horizon * rng.uniform(0.9, 1.05), 0, 1)
        return SceneLook(
            sun_direction=tuple(float(v) for v in sun),
            sunny=sunny,
            ambient=float(rng.uniform(0.45, 0.6) if sunny else rng.uniform(0.75, 0.9)),
            sun_strength=float(rng.uniform(0.45, 0.7) if sunny else 0.0),
            shadow_strength=float(rng.uniform(0.3, 0.55) if sunny else 0.0),
            sky_horizon=tuple(float(v) for v in np.clip(horizon, 0, 1)),
            sky_zenith=tuple(float(v) for v in np.clip(zenith, 0, 1)),
            cloud_color=tuple(float(v) for v in np.clip(horizon * rng.uniform(0.85, 1.1), 0, 1)),
            cloud_cover=float(cloud_cover),
            haze_color=tuple(float(v) for v in haze),
            haze_distance=float(rng.uniform(150.0, 600.0)),
            exposure=float(rng.uniform(0.7, 1.25)),
            contrast=float(rng.uniform(0.75, 1.25)),
            gamma=float(rng.uniform(0.8, 1.25)),
            white_balance=tuple(float(v) for v in rng.uniform(0.9, 1.1, 3)),
            sensor_noise=float(rng.uniform(0.005, 0.03)),
            blur_sigma=float(rng.uniform(0.0, 1.0)),
            vignette=float(rng.uniform(0.0, 0.35)),
        )

    def shade(self, normal: tuple[float, float, float] | None) -> float:
        """Brightness factor of a surface facing ``normal`` (None: lit from all sides)."""
        if normal is None:
            return self.ambient + 0.5 * self.sun_strength
        sx, sy, sz = self.sun_direction
        direct = max(0.0, normal[0] * sx + normal[1] * sy + normal[2] * sz)
        sky_light = 0.15 * (0.5 + 0.5 * normal[1])
        return self.ambient + self.sun_strength * direct + sky_light


@dataclass
class MaterialTable:
    """Growing table of materials; index 0 is the sky."""

    train_ids: list[int] = field(default_factory=lambda: [SKY])
    instance_ids: list[int] = field(default_factory=lambda: [CITYSCAPES_CLASSES[SKY].label_id])
    colors: list[tuple[float, float, float]] = field(default_factory=lambda: [(0.0, 0.0, 0.0)])
    textures: list[tuple[float, float, float]] = field(default_factory=lambda: [SMOOTH])
    depths: list[float] = field(default_factory=lambda: [1e4])
    ground: list[bool] = field(default_factory=lambda: [False])

    def add(
        self,
        train_id: int,
        instance_id: int,
        color: tuple[float, float, float],
        texture: tuple[float, float, float],
        depth: float,
        ground: bool,
    ) -> int:
        """Append a material and return its index."""
        if len(self.train_ids) >= MAX_MATERIALS:
            raise RuntimeError("too many materials in one frame for a uint16 surface map")
        self.train_ids.append(train_id)
        self.instance_ids.append(instance_id)
        self.colors.append(color)
        self.textures.append(texture)
        self.depths.append(depth)
        self.ground.append(ground)
        return len(self.train_ids) - 1


@dataclass(frozen=True)
class NoiseFields:
    """Screen-space luminance noise of one scene at three scales (fine, medium, coarse), H x W each."""

    fine: np.ndarray
    medium: np.ndarray
    coarse: np.ndarray

    @staticmethod
    def sample(rng: np.random.Generator, height: int, width: int) -> NoiseFields:
        """Draw the three texture scales; cell sizes scale with the image width."""
        fine = rng.standard_normal((height, width), dtype=np.float32)
        layers = []
        for cell in (max(1.0, width / 300.0), max(2.0, width / 40.0)):
            small = rng.standard_normal(
                (int(np.ceil(height / cell)) + 1, int(np.ceil(width / cell)) + 1), dtype=np.float32
            )
            layers.append(cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR))
        return NoiseFields(fine, *layers)


def compose_image(
    surfaces: np.ndarray,
    shadows: np.ndarray,
    table: MaterialTable,
    camera_height: float,
    ray_y: tuple[float, float, float],
    look: SceneLook,
    fields: NoiseFields,
    rng: np.random.Generator,
) -> np.ndarray:
    """Render the RGB uint8 image of a surface map.

    ``ray_y`` are the coefficients of :meth:`Camera.ray_y_coefficients`; ``rng`` draws only the
    per-frame sensor noise. Work is done on single-channel planes, which NumPy handles much
    faster than interleaved RGB.
    """
    h, w = surfaces.shape
    idx = surfaces.astype(np.intp)
    colors = np.clip(np.asarray(table.colors, dtype=np.float32), 0.0, 1.5)
    textures = np.asarray(table.textures, dtype=np.float32)
    depths = np.asarray(table.depths, dtype=np.float32)
    haze_far = 1.0 - np.exp(-depths / look.haze_distance)
    haze_far[0] = 0.0  # the sky's colours already include the haze
    ground = np.asarray(table.ground, dtype=bool)

    a, b, c = ray_y
    uu = np.arange(w, dtype=np.float32)[None, :]
    vv = np.arange(h, dtype=np.float32)[:, None]
    ray_up = a * uu + b * vv + c  # world-y of each pixel ray at unit camera depth

    factor = np.take(textures[:, 0].copy(), idx) * fields.fine
    factor += np.take(textures[:, 1].copy(), idx) * fields.medium
    factor += np.take(textures[:, 2].copy(), idx) * fields.coarse
    factor += 1.0
    is_ground = np.take(ground, idx)
    ground_haze = 1.0 - np.exp(-camera_height / np.maximum(-ray_up, 1e-4) / look.haze_distance)
    haze = np.where(is_ground, ground_haze, np.take(haze_far, idx))
    factor *= 1.0 - haze
    if look.sunny:
        factor *= np.where(is_ground & (shadows > 0), np.float32(1.0 - look.shadow_strength), np.float32(1.0))
    # Exposure, white balance, contrast and vignetting: one affine map per channel, in 0..255 units.
    light = np.full((h, w), 255.0, dtype=np.float32)
    if look.vignette > 0:
        light -= (255.0 * look.vignette) * (((uu - w / 2) / (w / 2)) ** 2 + ((vv - h / 2) / (w / 2)) ** 2)
    factor *= light
    haze *= light
    gain = np.asarray(look.white_balance, dtype=np.float32) * (look.exposure * look.contrast)
    offset = 255.0 * 0.45 * (1.0 - look.contrast)
    noise_scale = np.float32(look.sensor_noise * 2.0 * 3.0**0.5)
    # Uniform sensor noise from random bytes, mapped through a table (with the contrast offset).
    noise_lut = (np.arange(256, dtype=np.float32) - np.float32(127.5)) * noise_scale + np.float32(offset)
    noise = np.frombuffer(rng.bytes(3 * h * w), dtype=np.uint8).reshape(3, h, w).copy()

    is_sky = surfaces == 0
    sky_rows = np.nonzero(is_sky.any(axis=1))[0]
    if len(sky_rows):
        r0, r1 = sky_rows[0], sky_rows[-1] + 1
        sky_mask = is_sky[r0:r1]
        sky_t = np.clip(ray_up[r0:r1] / 0.45, 0.0, 1.0) ** 0.7
        clouds = np.clip((fields.coarse[r0:r1] + 1.2 * look.cloud_cover - 0.9) * 1.5, 0.0, 1.0)
    # Reused plane buffers: fresh multi-megabyte arrays cost page faults on every frame.
    plane = np.empty((h, w), dtype=np.float32)
    scratch = np.empty((h, w), dtype=np.float32)
    planes = []
    for ch in range(3):
        np.take(colors[:, ch] * gain[ch], idx, out=plane)
        plane *= factor
        np.multiply(haze, look.haze_color[ch] * gain[ch], out=scratch)
        plane += scratch
        if len(sky_rows):
            sky = look.sky_horizon[ch] + (look.sky_zenith[ch] - look.sky_horizon[ch]) * sky_t
            sky += (look.cloud_color[ch] - sky) * clouds
            sky *= light[r0:r1] * gain[ch]
            np.copyto(plane[r0:r1], sky, where=sky_mask)
        plane += cv2.LUT(noise[ch], noise_lut, dst=scratch)
        np.clip(plane, 0.0, 255.0, out=plane)
        planes.append(plane.astype(np.uint8))
    gamma = (np.linspace(0.0, 1.0, 256) ** (1.0 / look.gamma) * 255.0 + 0.5).astype(np.uint8)
    out = cv2.LUT(cv2.merge(planes), gamma)
    blur = look.blur_sigma * w / 1024.0
    if blur > 0.25:
        out = cv2.GaussianBlur(out, (0, 0), blur)
    return out
