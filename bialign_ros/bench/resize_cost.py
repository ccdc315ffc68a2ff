"""What bringing outputs computed at a reduced input scale to the camera's size costs.

The exact path (:mod:`bialign_ros.upsample`: labels the argmax, edges the sigmoid of the bilinearly
upsampled logits) against the nearest-neighbour labels and bilinearly resized edge probabilities it
replaced, both timed in turn on the same network outputs of one frame, next to the Segmenter's whole
frame time at that scale (uint8 image in, labels and edges at the camera's size out).
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from bialign_ros.segmenter import Segmenter
from bialign_ros.timing import time_alternating, time_calls
from bialign_ros.upsample import (
    NetworkLogits,
    boundary_cells,
    per_image,
    unshuffle_edge_logits,
    upsample_edges,
    upsample_labels,
)


def measure_resize_cost(seg: Segmenter, image: np.ndarray, iters: int, warmup: int) -> dict[str, Any]:
    """The exact and the nearest-neighbour resize of ``seg``'s outputs for ``image`` (milliseconds, each
    a :func:`~bialign_ros.timing.latency_summary`), the share of the network's 2 x 2 cells on a label
    boundary, the Segmenter's frame time, and ``overhead``: the exact frame over the same frame with
    the nearest-neighbour resize, minus 1. ``seg`` must run the network at another size than ``image``."""
    height, width = image.shape[:2]
    batch = seg.network_input(image)[None]
    nh, nw = batch.shape[1:3]
    if (nh, nw) == (height, width):
        raise ValueError(f"the network runs at the image's own size {width}x{height}: nothing to resize")
    out = seg.runner.run(batch, logits=True)
    labels, edges = out.labels[0], out.edges[0]
    [raw], [raw_edge] = per_image(out.logits, 1, nh, nw), per_image(out.edge_logits, 1, nh, nw)
    logits = NetworkLogits(raw, nh, nw)

    def exact() -> None:
        upsample_labels(labels, logits, (height, width), seg.pool)
        upsample_edges(unshuffle_edge_logits(raw_edge, nh, nw), (height, width), seg.pool)

    def nearest() -> None:
        cv2.resize(labels, (width, height), interpolation=cv2.INTER_NEAREST)
        cv2.resize(edges, (width, height), interpolation=cv2.INTER_LINEAR)

    exact_ms, nearest_ms = time_alternating([exact, nearest], iters, warmup)
    frame = time_calls(lambda: seg.segment(image, edges=True), iters, warmup)
    extra = exact_ms["mean_ms"] - nearest_ms["mean_ms"]
    return {"network_size": [nh, nw], "size": [height, width], "input_scale": seg.input_scale,
            "boundary_cells": float(boundary_cells(labels).mean()), "exact": exact_ms, "nearest": nearest_ms,
            "segmenter": frame, "overhead": extra / (frame["mean_ms"] - extra)}
