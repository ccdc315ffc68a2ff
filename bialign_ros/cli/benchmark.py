"""``bialign_benchmark``: throughput, latency, memory and label agreement of every backend, side by side.

One configuration (the default): the backend of ``--weights`` (a ``.pt`` checkpoint or an exported
``.onnx``) is timed as the bare model (uint8 image at the network's size in, labels and edges of
the inference graph out: normalisation, forward and argmax) and as the Segmenter end to end
(uint8 image in, labels and edges at the image's size out). ``--node`` adds the ROS node end to
end: a publisher at a fixed rate through real DDS, the node in its own process, delivered rate,
drops and latency. Prints a table and one JSON line.

Several configurations (``--configs``, e.g. ``all``): exports and quantises the checkpoint as
needed (cached under ``--work-dir``), measures the machine's convolution peaks, then runs every
configuration at every ``--sizes`` in a process of its own (clean memory peaks, no shared thread
pools), each compared with the PyTorch fp32 labels on held-out synthetic frames. Writes a JSON
record, a Markdown report (``--markdown``) and a plot of FPS per backend (``--plot``).

This module parses the command line; the work is done by :mod:`bialign_ros.bench`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import fields
from pathlib import Path

from bialign_ros.backends.base import BACKENDS, BackendUnavailable
from bialign_ros.bench.configs import CONFIGS
from bialign_ros.bench.measure import MeasureOptions, measure_configuration
from bialign_ros.bench.node_command import SUBSCRIBABLE, outputs_arg
from bialign_ros.bench.output_costs import OutputCostOptions, measure_output_costs, output_costs_markdown
from bialign_ros.bench.report import markdown_report, plot_fps, print_record
from bialign_ros.bench.suite import SuiteOptions, previous_run, run_suite
from bialign_ros.checkpoint import CheckpointError
from bialign_ros.export import ExportError
from bialign_ros.model import ARCHITECTURES
from bialign_ros.segmenter import DEVICES, PRECISIONS


def parse_size(text: str) -> tuple[int, int]:
    """``HxW`` -> (H, W)."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 512x1024 (height x width), got {text!r}") \
            from None
    if h < 8 or w < 8:
        raise argparse.ArgumentTypeError(f"size {text} is too small (at least 8x8)")
    return h, w


def count_arg(text: str) -> int:
    """A count of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of bialign_benchmark."""
    p = argparse.ArgumentParser(prog="bialign_benchmark", description=__doc__.splitlines()[0])
    p.add_argument("--weights", type=Path, default=None,
                   help="checkpoint (.pt) or export (.onnx); without it untrained weights of --arch "
                        "are timed")
    p.add_argument("--arch", choices=ARCHITECTURES, default="bialign_dfnet2")
    p.add_argument("--height", type=int, default=1024)
    p.add_argument("--width", type=int, default=2048)
    p.add_argument("--backend", default="auto", choices=BACKENDS, help="backend of one configuration")
    p.add_argument("--device", default="auto", help=f"one of {', '.join(DEVICES)}")
    p.add_argument("--precision", default="auto", choices=PRECISIONS)
    p.add_argument("--input-scale", type=float, default=1.0)
    p.add_argument("--compile", action="store_true", help="torch backend: wrap the graph in torch.compile")
    p.add_argument("--iters", type=count_arg, default=10, help="timed iterations per measurement")
    p.add_argument("--warmup", type=int, default=2, help="untimed iterations first")
    p.add_argument("--time-budget", type=float, default=0.0, metavar="SECONDS",
                   help="bound each timing of a slow configuration: the untimed calls stop after a quarter of "
                        "it, the timed ones after all of it, with at least 3 timed (0: no bound)")
    p.add_argument("--threads", type=int, default=0,
                   help="torch and ONNX Runtime CPU threads (0: the libraries' defaults / physical cores)")
    p.add_argument("--node", action="store_true", help="also measure the ROS node end to end (needs rclpy)")
    p.add_argument("--node-seconds", type=float, default=20.0, help="measured window of the node run")
    p.add_argument("--node-warmup", type=float, default=8.0, help="seconds of frames before the window")
    p.add_argument("--node-slices", type=count_arg, default=3,
                   help="slices of the node's window, the bare Segmenter timed before, between and after them "
                        "(the node / Segmenter ratio holds each slice against the rates on either side)")
    p.add_argument("--node-pairs", type=count_arg, default=2,
                   help="--output-costs: pairs of node runs (labels only, every output), alternating")
    p.add_argument("--node-rate", type=float, default=0.0,
                   help="publish rate in Hz (0: see --node-rate-factor)")
    p.add_argument("--node-rate-factor", type=float, default=1.2,
                   help="publish at this multiple of the measured Segmenter rate, so the node never waits")
    p.add_argument("--node-outputs", type=outputs_arg, default=(), metavar="labels|all|NAME,...",
                   help="outputs the node runs subscribe to besides the labels and edges: none (default: "
                        f"labels), all, or these of {', '.join(SUBSCRIBABLE)}; the node computes optional "
                        "outputs only while subscribed")
    p.add_argument("--output-costs", action="store_true",
                   help="measure what the planner outputs cost instead (confidence and free space in the "
                        "Segmenter at --height x --width, the grid and the points at 1024x2048, the exact "
                        "labels and edges at 1024x2048 from input scale 0.5 against a nearest-neighbour resize, "
                        "the node with every output subscribed); --json and --markdown keep the record and "
                        "its table")
    suite = p.add_argument_group("several configurations side by side")
    suite.add_argument("--configs", nargs="+", default=None, metavar="NAME",
                       help=f"'all' or some of: {', '.join(CONFIGS)}")
    suite.add_argument("--sizes", nargs="+", type=parse_size, default=None, metavar="HxW",
                       help="sizes to measure (default: --height x --width); exports are traced and "
                            "calibrated at the first")
    suite.add_argument("--peak-map", type=parse_size, default=(128, 256), metavar="HxW",
                       help="feature-map size of the convolution stack that measures the peaks")
    suite.add_argument("--agreement-frames", type=int, default=4, help="held-out synthetic frames per size")
    suite.add_argument("--calib-frames", type=int, default=8, help="synthetic calibration frames for int8")
    suite.add_argument("--cameras", type=int, default=2,
                       help="with --node: also this many cameras in one node, with the best configuration at "
                            "the first size (below 2: not measured)")
    suite.add_argument("--node-streams", type=int, default=2,
                       help="with --node: also onnxruntime-int8's node at every size with this many frames in "
                            "inference at once (its inference_streams; below 2: not measured)")
    suite.add_argument("--work-dir", type=Path, default=Path("bench_out"), help="exports, records, frames")
    suite.add_argument("--json", type=Path, default=None, help="write the suite record here")
    suite.add_argument("--markdown", type=Path, default=None, help="write the Markdown report here")
    suite.add_argument("--plot", type=Path, default=None, help="write the FPS plot (PNG) here")
    suite.add_argument("--previous", type=Path, default=None, metavar="JSON",
                       help="the --json record of an earlier run: the report sets its figures beside this run's "
                            "(how far they move between runs)")
    return p


def _options(cls: type, args: argparse.Namespace, **values: object) -> object:
    """``cls`` (an options dataclass) from the parsed arguments of the same names, and ``values``."""
    given = vars(args)
    return cls(**{f.name: given[f.name] for f in fields(cls) if f.name in given and f.name not in values}, **values)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = build_parser().parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        weights = args.weights
        if weights is None:
            from bialign_ros.weights import untrained_checkpoint

            weights = untrained_checkpoint(Path(tmp) / "untrained.pt", args.arch)
        try:
            if args.output_costs:
                return _output_costs(_options(OutputCostOptions, args, weights=str(weights),
                                              node_seconds=args.node_seconds), args)
            if args.configs:
                previous = previous_run(args.previous) if args.previous else None  # read before a long run
                suite = run_suite(_options(SuiteOptions, args, sizes=args.sizes or [(args.height, args.width)],
                                           work_dir=args.work_dir), weights)
                if previous:
                    suite["previous"] = previous
            else:
                record = measure_configuration(_options(MeasureOptions, args, weights=str(weights)))
        except (CheckpointError, ExportError, ValueError, BackendUnavailable) as exc:
            print(f"bialign_benchmark: error: {exc}", file=sys.stderr)
            return 2
    if not args.configs:
        print_record(record, record["hardware"])
        print(json.dumps(record))
        return 0
    text = json.dumps(suite)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(markdown_report(suite))
    if args.plot:
        plot_fps(suite, args.plot)
    for record in suite["results"]:
        print_record(record, suite["hardware"])
    print(text)
    return 0


def _output_costs(opts: OutputCostOptions, args: argparse.Namespace) -> int:
    record = measure_output_costs(opts)
    table = output_costs_markdown(record)
    for path, text in ((args.json, json.dumps(record)), (args.markdown, table)):
        if path:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
