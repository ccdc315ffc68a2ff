"""From a segmentation result to the images the product publishes and writes (pure Python).

The node's topics, the rosbag evaluation's ``outputs.mcap`` and ``bialign_segment``'s PNG files
are all made here, so they hold the same bytes for the same frame. Each output has a name (its key
in :data:`bialign_ros.node_interface.OUTPUT_TOPICS`), an encoding and one function below; adding
an output means an entry in that table, a function here and its publisher in the node.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from bialign_ros.classes import DEFAULT_FREE_SPACE_CLASSES, class_lookup, free_space_classes_for
from bialign_ros.colorize import overlay
from bialign_ros.node_interface import OUTPUT_TOPICS

if TYPE_CHECKING:
    from bialign_ros.segmenter import SegmentationResult, Segmenter


@dataclass(frozen=True)
class OutputSettings:
    """How the outputs are drawn: the overlay's colour weight and what counts as free space."""

    overlay_alpha: float = 0.5
    free_space_classes: tuple[str, ...] = DEFAULT_FREE_SPACE_CLASSES
    """Class names whose pixels are free space (when confident enough)."""
    free_space_min_confidence: float = 0.5
    """A pixel of a free-space class is free space when its confidence is at least this."""

    def for_model(self, class_names: Sequence[str]) -> OutputSettings:
        """These settings for a model whose classes are ``class_names``: the default free-space classes
        become those of them the model has (:func:`~bialign_ros.classes.free_space_classes_for`).

        ValueError naming a given free-space class the model does not have, or a confidence outside [0, 1].
        """
        if not 0.0 <= self.free_space_min_confidence <= 1.0:
            raise ValueError(f"free_space_min_confidence must be in [0, 1], got {self.free_space_min_confidence}")
        return replace(self, free_space_classes=free_space_classes_for(class_names, self.free_space_classes))

    def free_space(self, result: SegmentationResult, class_names: Sequence[str]) -> np.ndarray:
        """H x W bool: the pixels of ``result`` that are free space (ValueError for an unknown class)."""
        free = class_lookup(self.free_space_classes, class_names)[result.labels]
        if result.confidence is None:
            raise ValueError("free space needs the confidence map (segment(..., confidence=True))")
        return free & (result.confidence >= np.float32(self.free_space_min_confidence))


@dataclass
class _Frame:
    """What every output function may read; colours are computed at most once per frame."""

    seg: Segmenter
    image: np.ndarray
    result: SegmentationResult
    settings: OutputSettings

    @cached_property
    def colors(self) -> np.ndarray:
        return self.seg.colorize(self.result.labels)


def _labels(f: _Frame) -> np.ndarray:
    return f.result.labels


def _edges(f: _Frame) -> np.ndarray:
    return f.result.edges_u8()


def _color(f: _Frame) -> np.ndarray:
    return f.colors


def _overlay(f: _Frame) -> np.ndarray:
    return overlay(f.image, f.colors, f.settings.overlay_alpha, f.result.labels, f.seg.meta.ignore_index)


def _confidence(f: _Frame) -> np.ndarray:
    return f.result.confidence_u8()


def _free_space(f: _Frame) -> np.ndarray:
    return f.settings.free_space(f.result, f.seg.meta.class_names).view(np.uint8) * np.uint8(255)


@dataclass(frozen=True)
class _Renderer:
    encoding: str
    render: Callable[[_Frame], np.ndarray]
    needs_edges: bool = False
    needs_confidence: bool = False


_RENDERERS: dict[str, _Renderer] = {
    "labels": _Renderer("mono8", _labels),
    "edges": _Renderer("mono8", _edges, needs_edges=True),
    "color": _Renderer("rgb8", _color),
    "overlay": _Renderer("rgb8", _overlay),
    "confidence": _Renderer("mono8", _confidence, needs_confidence=True),
    "free_space": _Renderer("mono8", _free_space, needs_confidence=True),
}

IMAGE_OUTPUTS: tuple[str, ...] = tuple(_RENDERERS)
"""Every image output, in publishing order: ``labels``, ``edges``, ``color``, ``overlay``,
``confidence`` (round(255 p) of the label's softmax probability), ``free_space`` (255/0)."""
OPTIONAL_OUTPUTS: tuple[str, ...] = tuple(name for name in IMAGE_OUTPUTS if name != "labels")
"""Outputs computed only when wanted (the node: switched on and subscribed); labels always are."""
ENCODINGS: dict[str, str] = {name: r.encoding for name, r in _RENDERERS.items()}
"""The image encoding of each output (mono8 or rgb8)."""


@dataclass(frozen=True)
class OutputImage:
    """One output of one frame: its name, topic name (relative), encoding and pixels."""

    name: str
    encoding: str
    array: np.ndarray = field(repr=False)

    @property
    def topic(self) -> str:
        """The relative topic name the node publishes it on (e.g. ``segmentation/labels``)."""
        return OUTPUT_TOPICS[self.name]


def images_of(names: Iterable[str]) -> tuple[str, ...]:
    """The image outputs among ``names`` (others, such as the grid, are made elsewhere)."""
    return tuple(name for name in names if name in _RENDERERS)


def check_outputs(names: Iterable[str]) -> tuple[str, ...]:
    """``names`` as a tuple in publishing order; ValueError naming an unknown output."""
    names = set(names)
    unknown = names - set(IMAGE_OUTPUTS)
    if unknown:
        raise ValueError(f"unknown output(s) {', '.join(sorted(unknown))}; known: {', '.join(IMAGE_OUTPUTS)}")
    return tuple(name for name in IMAGE_OUTPUTS if name in names)


def needs_edges(names: Iterable[str]) -> bool:
    """Whether any of ``names`` needs the edge map from the Segmenter (``segment(..., edges=...)``)."""
    return any(_RENDERERS[name].needs_edges for name in check_outputs(names))


def needs_confidence(names: Iterable[str]) -> bool:
    """Whether any of ``names`` needs the confidence map (``segment(..., confidence=...)``)."""
    return any(_RENDERERS[name].needs_confidence for name in check_outputs(names))


def render_outputs(seg: Segmenter, image: np.ndarray, result: SegmentationResult, names: Iterable[str],
                   settings: OutputSettings = OutputSettings()) -> list[OutputImage]:
    """The outputs ``names`` of one frame, in publishing order.

    ``image`` is the H x W x 3 uint8 RGB frame that ``result`` was computed from (with the edge and
    confidence maps the outputs need: :func:`needs_edges`, :func:`needs_confidence`); every output
    has its H x W.
    """
    frame = _Frame(seg, image, result, settings)
    return [OutputImage(name, _RENDERERS[name].encoding, _RENDERERS[name].render(frame))
            for name in check_outputs(names)]
