"""ROS domain ids of tests, tools and benchmarks: disjoint, valid, spread over processes."""

from __future__ import annotations

import itertools

import pytest

from bialign_ros.ros_domains import DOMAIN_RANGES, VALID_DOMAINS, domain_id_for, domain_ids, pick_domain_id

EPHEMERAL_PORT_DOMAINS = range(102, 215)
"""Domains whose DDS ports fall into Linux's ephemeral ports (the ROS 2 documentation)."""


def test_ranges_are_disjoint_valid_and_clear_of_the_default_and_ephemeral_ports():
    for (a, ra), (b, rb) in itertools.combinations(DOMAIN_RANGES.items(), 2):
        assert not set(ra) & set(rb), f"{a} and {b} share domain ids"
    for user, ids in DOMAIN_RANGES.items():
        assert len(ids) > 0 and set(ids) <= set(VALID_DOMAINS), user
        assert 0 not in ids and not set(ids) & set(EPHEMERAL_PORT_DOMAINS), user


@pytest.mark.parametrize("user", list(DOMAIN_RANGES))
def test_picks_stay_in_the_users_range_and_spread_over_calls_and_processes(user):
    ids = domain_ids(user)
    assert {domain_id_for(user, 4242, count) for count in range(len(ids))} == set(ids)  # no repeat before all
    assert {domain_id_for(user, pid, 0) for pid in range(1000, 1000 + len(ids))} == set(ids)
    picks = [pick_domain_id(user) for _ in range(3)]
    assert set(picks) <= set(ids) and len(set(picks)) == 3


def test_unknown_user_is_named():
    with pytest.raises(ValueError, match="unknown domain user 'demo'; choose from tests, tools, benchmarks"):
        domain_ids("demo")
