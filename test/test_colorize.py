"""Palette lookup and overlay blending."""

import numpy as np
import pytest

from bialign_ros.classes import CITYSCAPES_COLORS
from bialign_ros.colorize import colorize, make_palette, overlay


def test_colorize_maps_every_class_and_unknown():
    palette = make_palette(CITYSCAPES_COLORS)
    labels = np.array([[0, 13, 255], [18, 10, 7]], np.uint8)
    out = colorize(labels, palette)
    assert out.shape == (2, 3, 3) and out.dtype == np.uint8
    assert tuple(out[0, 0]) == (128, 64, 128)  # road
    assert tuple(out[0, 1]) == (0, 0, 142)  # car
    assert tuple(out[0, 2]) == (0, 0, 0)  # unknown
    assert tuple(out[1, 0]) == (119, 11, 32)  # bicycle


def test_colorize_is_the_palette_row_of_every_pixel_of_any_layout():
    rng = np.random.default_rng(0)
    palette = make_palette(rng.integers(0, 256, (40, 3)))
    labels = rng.integers(0, 256, (61, 90), dtype=np.uint8)
    for view in (labels, labels[::2, 1::3], labels.T):  # contiguous, strided, transposed
        np.testing.assert_array_equal(colorize(view, palette), palette[view])


def test_colorize_rejects_wrong_dtype():
    with pytest.raises(ValueError, match="uint8"):
        colorize(np.zeros((2, 2), np.int64), make_palette(CITYSCAPES_COLORS))


def test_overlay_blend_and_unknown_keeps_image():
    image = np.full((4, 4, 3), 200, np.uint8)
    colors = np.zeros((4, 4, 3), np.uint8)
    labels = np.zeros((4, 4), np.uint8)
    labels[0, 0] = 255
    out = overlay(image, colors, 0.25, labels)
    assert out[1, 1, 0] == 150
    assert out[0, 0, 0] == 200
    assert np.array_equal(overlay(image, colors, 0.0), image)
    with pytest.raises(ValueError, match="alpha"):
        overlay(image, colors, 1.5)


def test_too_many_classes():
    with pytest.raises(ValueError, match="255"):
        make_palette([(0, 0, 0)] * 256)
