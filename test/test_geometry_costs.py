"""The cost measurement of the grid and points runs and reports every output (timings are not judged)."""

from __future__ import annotations

from bialign_ros.geometry_costs import measure_geometry_costs


def test_geometry_costs_are_measured_for_every_output() -> None:
    costs = measure_geometry_costs(height=96, width=192, iters=2, warmup=0)
    assert set(costs) == {"grid", "grid_map", "points_16UC1", "points_32FC1"}
    assert all(summary["mean_ms"] > 0 for summary in costs.values())
