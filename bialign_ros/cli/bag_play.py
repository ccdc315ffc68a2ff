"""``bialign_bag_play``: publish a rosbag2 bag over ROS with its recorded timing (scaled by --rate).

For environments without ``ros2 bag play`` (the pip install). Image, CompressedImage,
CameraInfo and every other type whose Python message package is installed are published;
other topics are skipped with a note. Exit codes: 0 done, 2 bad arguments or bag, 3 the bag is
truncated or damaged (everything readable was played).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import rclpy
from rclpy.executors import ExternalShutdownException

from bialign_ros.bags.io import BagError, BagReader
from bialign_ros.bags.play import RELIABILITIES, BagPlayer, PlayOptions, describe
from bialign_ros.transport import prepare_for_large_frames

PROG = "bialign_bag_play"
DEFAULT_CLOCK_HZ = 40.0


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of bialign_bag_play."""
    p = argparse.ArgumentParser(prog=PROG,
                                description="Publish a rosbag2 bag over ROS with its recorded timing.")
    p.add_argument("bag", type=Path, help="bag directory or .mcap/.db3 file")
    p.add_argument("--rate", type=float, default=1.0, help="playback speed factor (default 1.0)")
    p.add_argument("--loop", action="store_true", help="play again from the start when the bag ends")
    p.add_argument("--topics", nargs="+", default=[], metavar="TOPIC", help="play only these topics")
    p.add_argument("--clock", nargs="?", type=float, const=DEFAULT_CLOCK_HZ, default=0.0, metavar="HZ",
                   help=f"publish /clock with the bag's time (default {DEFAULT_CLOCK_HZ:g} Hz) for "
                        "use_sim_time")
    p.add_argument("--qos-reliability", default="reliable", choices=list(RELIABILITIES),
                   help="reliability of the publishers (default reliable)")
    p.add_argument("--qos-depth", type=int, default=10, help="history depth of the publishers (default 10)")
    p.add_argument("--wait-for-subscribers", type=float, default=0.0, metavar="SECONDS",
                   help="before playing, wait up to this long for every topic to have a subscriber")
    p.add_argument("--delay", type=float, default=0.0, metavar="SECONDS",
                   help="wait this long before playing")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args, ros_args = build_parser().parse_known_args(argv)
    try:
        options = PlayOptions(rate=args.rate, loop=args.loop, topics=tuple(args.topics), clock_hz=args.clock,
                              reliability=args.qos_reliability, depth=args.qos_depth,
                              wait_for_subscribers=args.wait_for_subscribers, delay=args.delay)
        reader = BagReader(args.bag)
    except (BagError, ValueError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    prepare_for_large_frames()
    rclpy.init(args=[PROG, *ros_args])
    node = rclpy.create_node("bialign_bag_play")
    try:
        player = BagPlayer(node, reader, options)
        for topic, why in player.stats.skipped.items():
            print(f"{PROG}: note: skipping {topic}: {why}", file=sys.stderr)
        print(f"playing {args.bag} ({', '.join(sorted(player.topics))}) at rate {args.rate:g}"
              f"{', looping' if args.loop else ''}", flush=True)
        stats = player.play()
        print(describe(stats), flush=True)
    except BagError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, ExternalShutdownException):
        return 0
    except Exception:
        if node.context.ok():
            raise
        return 0  # Ctrl-C: rclpy's signal handler shut the context down while a message was being published
    finally:
        reader.close()
        node.destroy_node()
        rclpy.try_shutdown()
    if stats.damage:
        print(f"{PROG}: error: {stats.damage}; the readable messages were played", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
