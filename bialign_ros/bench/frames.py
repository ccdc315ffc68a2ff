"""Synthetic frames for timing, label agreement and int8 calibration, from seeds of their own."""

from __future__ import annotations

import numpy as np

AGREEMENT_SEED = 70_000
"""Synthetic frames for label agreement come from seeds no training, calibration or demo scene uses."""
CALIBRATION_SEED = 90_000


def synthetic_frames(count: int, height: int, width: int, seed: int) -> np.ndarray:
    """``count`` synthetic street frames (RGB uint8), stacked."""
    from bialign_ros.synthetic import render_scene

    return np.stack([render_scene(seed + i, height, width).image for i in range(count)])
