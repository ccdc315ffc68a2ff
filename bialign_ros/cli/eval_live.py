"""``bialign_eval_live``: score the labels a running bialign node delivers against ground truth.

Subscribes to the node's labels and to a ground-truth topic (mono8 train IDs, e.g. from
``bialign_bag_play`` of a bag made by ``bialign_make_bag``), matches them by header stamp and
reports the mIoU of what the system delivered, counting the frames it dropped (see
:mod:`bialign_ros.bags.live_score`), over the class table of the node publishing the labels (or of
--weights). Runs until --frames, --duration, --idle-timeout or Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node

from bialign_ros.bags.live import RELIABILITIES, LiveEvaluator, publisher_class_names
from bialign_ros.bags.live_score import LiveScorer
from bialign_ros.checkpoint import CheckpointError, load_checkpoint
from bialign_ros.classes import IGNORE_INDEX
from bialign_ros.node_interface import OUTPUT_TOPICS
from bialign_ros.transport import prepare_for_large_frames

PROG = "bialign_eval_live"


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of bialign_eval_live."""
    p = argparse.ArgumentParser(prog=PROG, description="Score a running node's labels against ground truth.")
    p.add_argument("--gt-topic", required=True, help="ground-truth topic (mono8 Image of train IDs)")
    p.add_argument("--labels-topic", default=OUTPUT_TOPICS["labels"],
                   help=f"the node's labels topic (default {OUTPUT_TOPICS['labels']})")
    p.add_argument("--weights", type=Path,
                   help="checkpoint whose class table to use (default: the class_names parameter of "
                        "the node publishing the labels, ground truth ignoring 255)")
    p.add_argument("--wait-for-node", type=float, default=60.0,
                   help="without --weights: seconds to wait for the node publishing the labels (default 60)")
    p.add_argument("--stamp-tolerance-ms", type=float, default=2.0,
                   help="labels and ground truth match within this stamp difference (default 2)")
    p.add_argument("--frames", type=int, default=0,
                   help="stop once this many ground-truth frames are scored or counted as dropped "
                        "(e.g. the bag's frame count; 0: no limit)")
    p.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0: no limit)")
    p.add_argument("--idle-timeout", type=float, default=0.0,
                   help="stop once nothing has arrived for this many seconds after the first message "
                        "(0: off)")
    p.add_argument("--report-period", type=float, default=5.0,
                   help="seconds between progress lines (0: none)")
    p.add_argument("--qos-reliability", default="reliable", choices=list(RELIABILITIES),
                   help="reliability of both subscriptions (default reliable)")
    p.add_argument("--qos-depth", type=int, default=100,
                   help="history depth of both subscriptions (default 100)")
    p.add_argument("--out", type=Path, help="write the results as JSON to this file")
    return p


def _class_table(args: argparse.Namespace, node: Node,
                 executor: SingleThreadedExecutor) -> tuple[tuple[str, ...], int, bool]:
    """(class names, ignore index, whether a node publishing the labels was found) from --weights, else
    from the node publishing the labels."""
    if args.weights is not None:
        _, meta, _ = load_checkpoint(args.weights)
        return meta.class_names, meta.ignore_index, False
    name, names = publisher_class_names(node, executor, args.labels_topic, args.wait_for_node)
    print(f"class table of {name}: {', '.join(names)}", flush=True)
    return names, IGNORE_INDEX, True


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def _listen(live: LiveEvaluator, executor: SingleThreadedExecutor, args: argparse.Namespace) -> None:
    """Spin until --frames are resolved or --duration or --idle-timeout has passed (or Ctrl-C)."""
    start = next_report = time.monotonic()
    while True:
        executor.spin_once(timeout_sec=0.1)
        now = time.monotonic()
        if args.report_period > 0 and now >= next_report + args.report_period:
            next_report = now
            print(live.progress_line(), flush=True)
        if args.frames > 0 and live.resolved() >= args.frames:
            return
        if args.duration > 0 and now - start >= args.duration:
            return
        idle = None if live.last_arrival is None else now - live.last_arrival
        if args.idle_timeout > 0 and idle is not None and idle >= args.idle_timeout:
            return


def _summary_line(result: dict) -> str:
    frames = result["frames"]
    drop = "n/a" if frames["drop_ratio"] is None else f"{100 * frames['drop_ratio']:.1f}%"
    line = (f"mIoU {_percent(result['miou'])} counting drops ({_percent(result['delivered']['miou'])} over "
            f"delivered frames); {frames['ground_truth']} ground-truth frames, {frames['matched']} with "
            f"labels, {frames['dropped']} dropped ({drop})")
    delay = result["label_delay"]
    if delay is not None:
        line += f"; labels {delay['mean_ms']:.0f} ms after ground truth on average"
    return line


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args, ros_args = build_parser().parse_known_args(argv)
    if args.qos_depth < 1:
        print(f"{PROG}: error: --qos-depth must be >= 1, got {args.qos_depth}", file=sys.stderr)
        return 2
    prepare_for_large_frames()
    rclpy.init(args=[PROG, *ros_args])
    node = rclpy.create_node("bialign_eval_live")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    live = None
    try:
        names, ignore_index, node_found = _class_table(args, node, executor)
        scorer = LiveScorer(names, round(args.stamp_tolerance_ms * 1e6), ignore_index)
        # a node already publishing: wait for its labels to reach us before taking ground truth
        live = LiveEvaluator(node, scorer, args.labels_topic, args.gt_topic, args.qos_reliability, args.qos_depth,
                             executor if node_found else None, args.wait_for_node)
        print(f"listening: labels on {live.labels_topic}, ground truth on {live.gt_topic}", flush=True)
        _listen(live, executor, args)
    except (CheckpointError, ValueError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    if live is None:  # interrupted before listening: nothing was scored
        return 0
    live.scorer.finish()
    result = live.scorer.summary()
    result.update(labels_topic=live.labels_topic, gt_topic=live.gt_topic, errors=live.errors)
    print(_summary_line(result), flush=True)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
