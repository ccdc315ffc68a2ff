"""Shared fixtures: untrained checkpoints (Cityscapes and five own classes) and the ROS settings of
multi-process tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bialign_ros.transport import use_transport_profile


def pytest_configure(config: pytest.Config) -> None:
    """ROS processes of the tests (this one included) use the shipped transport profile and
    discover each other on this host only; both must be set before the first DDS participant."""
    use_transport_profile()
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")


@pytest.fixture(scope="session")
def untrained_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded untrained bialign_dfnet2 checkpoint (tens of ms per 96x160 frame on a CPU)."""
    from bialign_ros.weights import untrained_checkpoint

    return untrained_checkpoint(tmp_path_factory.mktemp("weights") / "untrained_dfnet2.pt", seed=0)


@pytest.fixture(scope="session")
def batch_norm_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """:func:`untrained_weights` whose batch norms are far from the identity (random running
    statistics, scales and shifts): what exports and backends that fold them are compared on."""
    from bialign_ros.weights import untrained_checkpoint

    return untrained_checkpoint(tmp_path_factory.mktemp("weights") / "batch_norm_dfnet2.pt", seed=0,
                                batch_norm_statistics=True)


@pytest.fixture(scope="session")
def five_class_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded untrained bialign_dfnet2 checkpoint of one's own five classes (road, sidewalk, vehicle,
    person, other) and colours: :data:`bialign_ros.synthetic.FIVE_CLASS_NAMES`."""
    import torch

    from bialign_ros.checkpoint import ModelMeta, save_checkpoint
    from bialign_ros.model import build_model
    from bialign_ros.synthetic import FIVE_CLASS_COLORS, FIVE_CLASS_NAMES

    torch.manual_seed(0)
    model = build_model("bialign_dfnet2", num_classes=len(FIVE_CLASS_NAMES), aux=False, edge=True)
    with torch.no_grad():  # confident labels, so the default free_space_min_confidence (0.5) leaves free space
        model.conv_out.conv_out.weight.mul_(20.0)
        model.conv_out.conv_out.bias.mul_(20.0)
    meta = ModelMeta(class_names=FIVE_CLASS_NAMES, class_colors=FIVE_CLASS_COLORS, training={"untrained": True})
    return save_checkpoint(tmp_path_factory.mktemp("weights") / "untrained_five_classes.pt", model.state_dict(), meta)


@pytest.fixture(scope="session")
def segmenter(untrained_weights: Path):
    """A CPU fp32 Segmenter of :func:`untrained_weights`: the reference the node's outputs are compared with."""
    from bialign_ros.segmenter import Segmenter

    seg = Segmenter.from_checkpoint(untrained_weights, device="cpu", precision="fp32")
    yield seg
    seg.close()


@pytest.fixture
def one_thread():
    """One intra-op thread: two OpenMP threads stall badly when another process takes a core."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def domain_id() -> int:
    """A ROS_DOMAIN_ID of its own for one test."""
    from ros_harness import next_domain_id

    return next_domain_id()
