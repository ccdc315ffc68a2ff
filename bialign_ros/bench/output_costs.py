"""What the outputs a planner reads cost: confidence and free space in the Segmenter, the grid and the
points per frame, and the node's delivered rate with every output subscribed.

1. The Segmenter on one synthetic frame: labels and edges (what the node computes for labels,
   edges, colour and overlay) against labels, edges, confidence and free space, called in turn;
   the ratio of the mean frame times is the overhead.
2. The grid and the points of one frame (:func:`bialign_ros.geometry_costs.measure_geometry_costs`).
3. At a reduced input scale, the exact outputs at the camera's size against the nearest-neighbour
   resize they replaced (:func:`bialign_ros.bench.resize_cost.measure_resize_cost`), on a frame of
   the grid's size.
4. The node through DDS (:mod:`bialign_ros.bench.node_harness`), with only the labels subscribed
   and with every output subscribed (camera_info and a depth image with every frame), in
   alternating runs (labels, every output, labels, ...): other load on a shared machine comes
   in bursts of minutes, which alternation spreads over both. The ratio of the delivered rates
   over all runs, and the ratio of each pair of runs for the spread.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bialign_ros.bench.node_command import NodeSpec
from bialign_ros.bench.node_harness import run_node
from bialign_ros.bench.resize_cost import measure_resize_cost
from bialign_ros.geometry_costs import measure_geometry_costs
from bialign_ros.ground_outputs import GROUND_OUTPUTS
from bialign_ros.outputs import IMAGE_OUTPUTS, OutputSettings
from bialign_ros.ros_domains import pick_domain_id
from bialign_ros.segmenter import Segmenter
from bialign_ros.synthetic import render_scene
from bialign_ros.timing import hardware_summary, time_alternating

TARGETS = {"segmenter_overhead": 0.05, "grid_ms": 5.0, "points_ms": 10.0, "resize_overhead": 0.15, "node_ratio": 0.9}
"""Upper bounds (overheads, milliseconds) and the lower bound of the node's rate ratio."""


@dataclass(frozen=True)
class OutputCostOptions:
    """What :func:`measure_output_costs` measures."""

    weights: str
    """The model the Segmenter and the node run (e.g. an int8 ONNX file)."""
    precision: str = "auto"
    """Precision of the Segmenter and the node (``.pt`` files: auto, fp32 or bf16 on CPUs)."""
    height: int = 512
    width: int = 1024
    geometry_height: int = 1024
    geometry_width: int = 2048
    resize_scale: float = 0.5
    """Input scale at which the exact resize to a geometry-sized frame is measured."""
    iters: int = 12
    warmup: int = 3
    node_seconds: float = 15.0
    node_rate: float = 0.0
    """Camera rate of the node runs; 0: 1.5 times the Segmenter's own rate (faster than the model)."""
    node_pairs: int = 2
    """Pairs of node runs (labels only, then every output)."""


def measure_output_costs(opts: OutputCostOptions) -> dict[str, Any]:
    """Every figure of the module docstring, with the machine, as one JSON-ready record."""
    seg = Segmenter.from_checkpoint(opts.weights, device="cpu", precision=opts.precision)
    image = render_scene(7, opts.height, opts.width).image
    settings = OutputSettings().for_model(seg.meta.class_names)

    def with_planner_maps() -> None:
        result = seg.segment(image, edges=True, confidence=True)
        settings.free_space(result, seg.meta.class_names)
        result.confidence_u8()

    base, planner = time_alternating([lambda: seg.segment(image, edges=True), with_planner_maps], opts.iters,
                                     opts.warmup)
    geometry = measure_geometry_costs(opts.geometry_height, opts.geometry_width)
    scaled = Segmenter.from_checkpoint(opts.weights, device="cpu", precision=opts.precision,
                                       input_scale=opts.resize_scale)
    resize = measure_resize_cost(scaled, render_scene(7, opts.geometry_height, opts.geometry_width).image,
                                 opts.iters, opts.warmup)
    scaled.close()
    rate = opts.node_rate or 1.5 * 1000.0 / base["mean_ms"]
    spec = NodeSpec(opts.weights, device="cpu", precision=opts.precision, backend=seg.backend)
    precision = seg.precision
    seg.close()
    runs: dict[str, list[dict[str, Any]]] = {"labels_only": [], "every_output": []}
    for _ in range(opts.node_pairs):
        for name, outputs in (("labels_only", ()), ("every_output", (*IMAGE_OUTPUTS, *GROUND_OUTPUTS))):
            run = run_node(spec, [image], rate, opts.node_seconds, pick_domain_id("benchmarks"), warmup=5.0,
                           outputs=outputs)
            runs[name].append(run.delivery())
    node = {name: {"delivered_hz": sum(r["delivered_hz"] for r in done) / len(done),
                   "runs": done} for name, done in runs.items()}
    return {
        "options": asdict(opts), "backend": spec.backend, "precision": precision, "hardware": hardware_summary(),
        "threads": os.cpu_count(),
        "segmenter": {"labels_edges": base, "with_confidence_and_free_space": planner,
                      "overhead": planner["mean_ms"] / base["mean_ms"] - 1.0},
        "geometry": geometry, "resize": resize, "node_rate_hz": rate, "node": node,
        "node_ratio": node["every_output"]["delivered_hz"] / node["labels_only"]["delivered_hz"],
        "node_pair_ratios": [b["delivered_hz"] / a["delivered_hz"] if a["delivered_hz"] else float("nan")
                             for a, b in zip(runs["labels_only"], runs["every_output"])],
    }


def output_costs_markdown(record: dict[str, Any]) -> str:
    """The record as a Markdown page (docs/benchmarks_outputs*.md), each figure against its target."""
    opts, seg, geo = record["options"], record["segmenter"], record["geometry"]
    node = record["node"]

    def verdict(ok: bool) -> str:
        return "meets" if ok else "MISSES"

    rows = [
        ("confidence + free space, Segmenter frame time", f"{seg['labels_edges']['mean_ms']:.1f} -> "
         f"{seg['with_confidence_and_free_space']['mean_ms']:.1f} ms ({100 * seg['overhead']:+.1f} %)",
         f"<= +{100 * TARGETS['segmenter_overhead']:.0f} %", verdict(seg["overhead"] <= TARGETS["segmenter_overhead"])),
        (f"grid, {opts['geometry_height']}x{opts['geometry_width']} labels", f"{geo['grid']['mean_ms']:.2f} ms "
         f"(map made once per camera: {geo['grid_map']['mean_ms']:.0f} ms)", f"<= {TARGETS['grid_ms']:g} ms",
         verdict(geo["grid"]["mean_ms"] <= TARGETS["grid_ms"])),
    ]
    for encoding in ("16UC1", "32FC1"):
        ms = geo[f"points_{encoding}"]["mean_ms"]
        rows.append((f"points, {opts['geometry_height']}x{opts['geometry_width']} depth {encoding}, stride 1",
                     f"{ms:.1f} ms", f"<= {TARGETS['points_ms']:g} ms", verdict(ms <= TARGETS["points_ms"])))
    resize = record["resize"]
    rows.append((f"labels + edges at {opts['geometry_height']}x{opts['geometry_width']} from input_scale "
                 f"{opts['resize_scale']:g}: exact against nearest neighbour, Segmenter frame time",
                 f"{resize['exact']['mean_ms']:.1f} against {resize['nearest']['mean_ms']:.1f} ms "
                 f"({100 * resize['boundary_cells']:.1f} % of the cells on a label boundary) in a "
                 f"{resize['segmenter']['mean_ms']:.0f} ms frame ({100 * resize['overhead']:+.1f} %)",
                 f"<= +{100 * TARGETS['resize_overhead']:.0f} %",
                 verdict(resize["overhead"] <= TARGETS["resize_overhead"])))
    rows.append(("node delivered rate, every output / labels only",
                 f"{node['every_output']['delivered_hz']:.2f} / {node['labels_only']['delivered_hz']:.2f} Hz = "
                 f"{record['node_ratio']:.2f} (pairs of runs: "
                 f"{', '.join(f'{r:.2f}' for r in record['node_pair_ratios'])})",
                 f">= {TARGETS['node_ratio']:g}",
                 verdict(record["node_ratio"] >= TARGETS["node_ratio"])))
    hw = record["hardware"]
    lines = [
        f"# What the planner outputs cost: {record['backend']}, {Path(opts['weights']).suffix} weights", "",
        f"`bialign_benchmark --output-costs` ({Path(opts['weights']).name}, backend {record['backend']} "
        f"{record['precision']}, "
        f"Segmenter at {opts['height']}x{opts['width']}, camera at {record['node_rate_hz']:.1f} Hz for "
        f"{opts['node_pairs']} pair(s) of {opts['node_seconds']:g} s node runs; "
        f"{hw.get('cpu', 'CPU')}, {hw.get('cores', record['threads'])} cores, "
        f"{', '.join(hw.get('cpu_features') or ['no AVX-512'])}). The costs depend on the "
        "architecture and the image sizes, not on the values of the weights. The depth images have no return on the "
        "sky and 10 % of the other pixels dropped, as a real sensor gives them. Machines here differ by 20 % and "
        "more between runs: compare within one run.", "",
        "| what | measured | target | |", "|---|---|---|---|",
        *(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows), "",
    ]
    return "\n".join(lines)
