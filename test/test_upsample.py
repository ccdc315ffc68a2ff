"""Outputs at another size than the network's: exactly the bilinearly resized logits, on every backend."""

from __future__ import annotations

from contextlib import closing

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bialign_ros import upsample
from bialign_ros.backends.contract import HEAD_FACTOR
from bialign_ros.segmenter import Segmenter
from bialign_ros.synthetic import render_scene
from bialign_ros.upsample import (
    FEW,
    NetworkLogits,
    boundary_cells,
    fast_path,
    per_image,
    unshuffle_edge_logits,
    upsample_confidence,
    upsample_edges,
    upsample_labels,
)
from bialign_ros.worker_pool import WorkerPool

TIE = 1e-4
"""Reference pixels whose two best resized logits are closer than this may go either way (rounding)."""


def smooth_logits(classes: int, height: int, width: int, seed: int) -> np.ndarray:
    """classes x height x width float32 logits with regions of several pixels and many boundaries."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(1, classes, max(2, height // 8), max(2, width // 8), generator=g) * 4
    return F.interpolate(coarse, size=(height, width), mode="bilinear")[0].numpy()


def as_blocks(planes: np.ndarray) -> np.ndarray:
    """The graph's fast-path layout of classes x h x w logits: (h/8 w/8) x (64 classes)."""
    k, h, w = planes.shape
    f = HEAD_FACTOR
    blocks = planes.reshape(k, h // f, f, w // f, f).transpose(1, 3, 2, 4, 0)
    return np.ascontiguousarray(blocks).reshape(-1, f * f * k)


def reference(planes: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels, confidence, tie mask) of the logits resized with PyTorch (align_corners=False)."""
    up = F.interpolate(torch.from_numpy(planes)[None], size=size, mode="bilinear", align_corners=False)[0]
    top2 = up.topk(2, 0).values
    return up.argmax(0).numpy(), torch.softmax(up, 0).amax(0).numpy(), (top2[0] - top2[1]).numpy() < TIE


def assert_labels_exact(labels: np.ndarray, planes: np.ndarray) -> None:
    """``labels`` are the argmax of ``planes`` resized to their size, ties aside."""
    expected, _, tie = reference(planes, labels.shape)
    wrong = (labels != expected) & ~tie
    assert not wrong.any(), f"{wrong.sum()} pixels differ from the argmax of the resized logits"


def graph_layout(planes: np.ndarray) -> NetworkLogits:
    """classes x h x w logits as the graph gives them at that size (blocks on its fast path)."""
    h, w = planes.shape[1:]
    return NetworkLogits(as_blocks(planes) if fast_path(h, w) else planes, h, w)


@pytest.mark.parametrize("network,size", [((64, 128), (128, 256)), ((64, 128), (256, 512)), ((40, 72), (100, 190)),
                                          ((42, 70), (100, 190)), ((45, 77), (90, 154)), ((64, 128), (48, 100))])
def test_labels_are_the_argmax_of_bilinearly_resized_logits(network, size):
    planes = smooth_logits(7, *network, seed=sum(size))
    labels = planes.argmax(0).astype(np.uint8)
    logits = graph_layout(planes)
    assert np.array_equal(logits.planes(), planes)
    out = upsample_labels(labels, logits, size)
    assert out.shape == size and out.dtype == np.uint8
    assert_labels_exact(out, planes)
    # The shortcut matters: nearest-neighbour labels differ from the exact ones at boundaries.
    nearest = cv2.resize(labels, size[::-1], interpolation=cv2.INTER_NEAREST)
    assert (nearest != out).mean() > 0.005


@pytest.mark.parametrize("workers", [2, 3, 5])
@pytest.mark.parametrize("network,size", [((64, 128), (128, 256)), ((45, 77), (90, 154)), ((3, 40), (7, 90))])
def test_bands_on_worker_threads_give_the_same_labels(workers, network, size):
    """Bands of network rows mixed on threads (more workers than rows included) write every boundary
    cell once: the same labels as one band in the caller's thread."""
    planes = smooth_logits(7, *network, seed=workers)
    labels = planes.argmax(0).astype(np.uint8)
    logits = graph_layout(planes)
    with closing(WorkerPool(workers)) as pool:
        out = upsample_labels(labels, logits, size, pool)
    assert np.array_equal(out, upsample_labels(labels, logits, size))
    assert_labels_exact(out, planes)


@pytest.mark.parametrize("network", [(64, 128), (62, 126)], ids=["blocks", "planes"])
def test_cells_with_any_number_of_contending_classes(network):
    """19 nearly tied classes: cells with 2, 3-4 and more contenders (each mixed its own way) are all exact,
    in both layouts of the graph's logits."""
    rng = np.random.default_rng(5)
    planes = (smooth_logits(19, *network, seed=9) * 0.2 + rng.normal(0, 0.3, (19, *network))).astype(np.float32)
    labels = planes.argmax(0).astype(np.uint8)
    size = (2 * network[0], 2 * network[1])
    assert_labels_exact(upsample_labels(labels, graph_layout(planes), size), planes)
    # The contending classes of each 2 x 2 cell: those whose largest corner logit reaches the largest
    # smallest-corner logit.
    corners = np.stack([planes[:, :-1, :-1], planes[:, :-1, 1:], planes[:, 1:, :-1], planes[:, 1:, 1:]])
    count = (corners.max(0) >= corners.min(0).max(0)).sum(0)
    assert {2, 3, 4} <= set(np.unique(count)) and (count > FEW).sum() > 20, np.bincount(count.ravel())


def test_a_third_class_can_win_between_two_labels():
    # Two network pixels labelled 0 and 1; class 2 is second at both and first in the mix.
    planes = np.zeros((3, 1, 2), np.float32)
    planes[:, 0, 0] = (10.0, 0.0, 9.0)
    planes[:, 0, 1] = (0.0, 10.0, 9.0)
    labels = planes.argmax(0).astype(np.uint8)
    out = upsample_labels(labels, NetworkLogits(planes, 1, 2), (1, 8))
    assert set(np.unique(out)) == {0, 1, 2}
    assert_labels_exact(out, planes)


def test_edges_and_confidence_are_those_of_the_resized_logits(monkeypatch):
    planes = smooth_logits(5, 48, 80, seed=4)
    size = (120, 200)
    _, conf, _ = reference(planes, size)
    assert np.abs(upsample_confidence(graph_layout(planes), size) - conf).max() < 1e-5
    # Bands of 7 output rows (the last one shorter), on threads and not.
    monkeypatch.setattr(upsample, "CONFIDENCE_BAND_BYTES", 4 * 5 * 200 * 7)
    with closing(WorkerPool(3)) as pool:
        banded = upsample_confidence(graph_layout(planes), size, pool)
    assert np.abs(banded - conf).max() < 1e-5
    assert np.array_equal(banded, upsample_confidence(graph_layout(planes), size))
    odd = smooth_logits(5, 45, 77, seed=5)  # the graph's planes layout, not its blocks
    assert np.abs(upsample_confidence(graph_layout(odd), size) - reference(odd, size)[1]).max() < 1e-5
    edge_logit = planes[0] * 2
    expected = torch.sigmoid(F.interpolate(torch.from_numpy(edge_logit)[None, None], size=size, mode="bilinear",
                                           align_corners=False))[0, 0].numpy()
    assert np.abs(upsample_edges(edge_logit, size) - expected).max() < 1e-5
    with closing(WorkerPool(3)) as pool:  # bands of rows on threads, one of them shorter
        assert np.array_equal(upsample_edges(edge_logit, (121, 200), pool), upsample_edges(edge_logit, (121, 200)))
    blocks = as_blocks(edge_logit[None])
    assert np.array_equal(unshuffle_edge_logits(blocks, 48, 80), edge_logit)


def test_uniform_labels_need_no_logits():
    labels = np.full((16, 24), 3, np.uint8)
    assert not boundary_cells(labels).any()
    out = upsample_labels(labels, graph_layout(np.zeros((5, 16, 24), np.float32)), (40, 60))
    assert (out == 3).all()


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    return render_scene(31, 96, 160).image


def backend_logits(seg: Segmenter, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(class logits classes x h x w, edge logit h x w) the Segmenter's backend gives for ``image``."""
    x = seg.network_input(image)[None]
    out = seg.runner.run(x, logits=True)
    h, w = x.shape[1:3]
    [raw], [raw_edge] = per_image(out.logits, 1, h, w), per_image(out.edge_logits, 1, h, w)
    return NetworkLogits(raw, h, w).planes(), unshuffle_edge_logits(raw_edge, h, w)


def check_reduced_scale(seg: Segmenter, image: np.ndarray) -> None:
    """The Segmenter's labels, confidence and edges are those of its backend's logits resized to the image."""
    planes, edge_logit = backend_logits(seg, image)
    res = seg.segment(image, confidence=True)
    size = image.shape[:2]
    assert_labels_exact(res.labels, planes)
    _, conf, _ = reference(planes, size)
    assert np.abs(res.confidence - conf).max() < 1e-4
    assert np.abs(res.edges - upsample_edges(edge_logit, size)).max() < 1e-6


@pytest.mark.parametrize("scale", [0.5, 0.25, 0.3])
def test_torch_segmenter_at_reduced_scale(untrained_weights, scene, scale):
    seg = Segmenter.from_checkpoint(untrained_weights, device="cpu", precision="fp32", input_scale=scale,
                                    warmup=False)
    check_reduced_scale(seg, scene)
    # The backend's logits are the model's own (its forward on the same network input).
    planes, _ = backend_logits(seg, scene)
    model_logits, _ = seg.forward(seg.preprocess(scene))
    assert np.abs(planes - model_logits[0].numpy()).max() < 1e-3
