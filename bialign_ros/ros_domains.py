"""ROS domain ids of the project's own ROS graphs: tests, tools and benchmarks (pure Python).

Each user gets a range of its own, so a test run, a demo and a benchmark running at the same
time on one machine never share a graph. The ranges keep to the ids the ROS 2 documentation
("The ROS_DOMAIN_ID") calls safe on Linux: 0-101 and 215-232 stay clear of the kernel's
ephemeral ports (32768-60999), which the DDS ports of ids 102-214 fall into. Ids 0-19 are left
to the user's own graphs (0 is every ROS process's default). Within a range, an id is chosen
from the process id and a per-process counter, so concurrent processes rarely meet and one
process's successive graphs differ.
"""

from __future__ import annotations

import itertools
import os

DOMAIN_RANGES: dict[str, range] = {
    "tests": range(20, 102),
    "tools": range(215, 224),
    "benchmarks": range(224, 233),
}
"""Disjoint ranges of domain ids per user."""
VALID_DOMAINS = range(0, 233)
"""Every domain id ROS 2 accepts on Linux."""

_counters = {user: itertools.count() for user in DOMAIN_RANGES}


def domain_ids(user: str) -> range:
    """The range of domain ids of ``user`` (one of :data:`DOMAIN_RANGES`)."""
    try:
        return DOMAIN_RANGES[user]
    except KeyError:
        raise ValueError(f"unknown domain user {user!r}; choose from {', '.join(DOMAIN_RANGES)}") from None


def domain_id_for(user: str, pid: int, count: int) -> int:
    """The domain id of ``user``'s ``count``-th graph in process ``pid``: the process id times 17 (prime
    to every range's length, so neighbouring process ids land far apart) plus ``count``."""
    ids = domain_ids(user)
    return ids[(pid * 17 + count) % len(ids)]


def pick_domain_id(user: str) -> int:
    """A domain id of ``user``'s range for this process's next ROS graph (:func:`domain_id_for`)."""
    return domain_id_for(user, os.getpid(), next(_counters[user]))
