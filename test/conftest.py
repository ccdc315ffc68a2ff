"""Shared fixtures: an untrained checkpoint and the ROS settings of multi-process tests."""

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
def segmenter(untrained_weights: Path):
    """A CPU fp32 Segmenter of :func:`untrained_weights`: the reference the node's outputs are compared with."""
    from bialign_ros.segmenter import Segmenter

    seg = Segmenter.from_checkpoint(untrained_weights, device="cpu", precision="fp32")
    yield seg
    seg.close()


@pytest.fixture
def domain_id() -> int:
    """A ROS_DOMAIN_ID of its own for one test."""
    from ros_harness import next_domain_id

    return next_domain_id()
