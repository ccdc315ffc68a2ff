"""``bialign_camera_sim``: a camera driver stand-in publishing a synthetic street or image files.

Publishes ``image`` (sensor_msgs/Image in any supported encoding) or ``image/compressed``
(jpeg/png) and a sibling ``camera_info`` at a fixed rate, stamped with the node clock; the
camera_info of a synthetic street holds the intrinsics it was rendered with, that of image files
a focal length equal to the width. Frames
are rendered and converted once, then looped, so publishing costs only the transport. Topic
names are relative: use ``--ros-args -r __ns:=/front`` or remaps as for any driver.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.utilities import remove_ros_args
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from bialign_ros.codec import COMPRESSED_FORMATS, CONVERTIBLE_ENCODINGS, encode_compressed, fill_image, rgb8_to
from bialign_ros.image_files import find_images, read_rgb
from bialign_ros.node_interface import CAMERA_INFO, INPUT_TOPIC, compressed_topic
from bialign_ros.qos import RELIABILITY_POLICIES, output_qos
from bialign_ros.synthetic import render_sequence, sequence_cameras
from bialign_ros.transport import prepare_for_large_frames


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of the camera simulator (ROS arguments go after --ros-args)."""
    p = argparse.ArgumentParser(prog="bialign_camera_sim", description=__doc__.splitlines()[0])
    p.add_argument("--rate", type=float, default=30.0, help="frames per second (default 30)")
    p.add_argument("--width", type=int, default=1024, help="synthetic frame width (default 1024)")
    p.add_argument("--height", type=int, default=512, help="synthetic frame height (default 512)")
    p.add_argument("--frames", type=int, default=30, help="synthetic frames rendered and looped (default 30)")
    p.add_argument("--seed", type=int, default=0, help="synthetic street seed (default 0)")
    p.add_argument("--folder", type=Path, help="publish the images of this folder (sorted) instead")
    p.add_argument("--encoding", default="rgb8", choices=CONVERTIBLE_ENCODINGS, help="raw image encoding")
    p.add_argument("--compressed", choices=COMPRESSED_FORMATS,
                   help="publish image/compressed in this format instead of raw image")
    p.add_argument("--reliability", default="reliable", choices=tuple(RELIABILITY_POLICIES),
                   help="publisher reliability (default reliable)")
    p.add_argument("--count", type=int, default=0, help="stop after this many frames (0: run until Ctrl-C)")
    p.add_argument("--frame-id", default="camera_optical_frame", help="header frame_id")
    return p


def load_frames(args: argparse.Namespace) -> list[tuple[np.ndarray, list[float] | None]]:
    """The RGB frames to loop with their intrinsics (row-major K): the folder's images (nominal
    intrinsics), or a rendered synthetic sequence (its camera's own)."""
    if args.folder is None:
        cameras = sequence_cameras(args.seed, args.frames, args.height, args.width)
        frames = render_sequence(args.seed, args.frames, args.height, args.width)
        return [(f.image, cam.k) for f, cam in zip(frames, cameras)]
    try:
        return [(read_rgb(path), None) for path in find_images(args.folder, recursive=False)]
    except ValueError as exc:
        raise SystemExit(str(exc)) from exc


def camera_info(height: int, width: int, frame_id: str, k: list[float] | None = None) -> CameraInfo:
    """A distortion-free pinhole: intrinsics ``k`` (row-major K), by default a focal length equal to
    the width and the principal point in the centre."""
    info = CameraInfo(height=height, width=width, distortion_model="plumb_bob", d=[0.0] * 5)
    info.k = k or [float(width), 0.0, width / 2.0, 0.0, float(width), height / 2.0, 0.0, 0.0, 1.0]
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    fx, _, cx, _, fy, cy = info.k[:6]
    info.p = [fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    info.header.frame_id = frame_id
    return info


class CameraSim(Node):
    """Publishes pre-converted frames in a loop at a fixed rate."""

    def __init__(self, args: argparse.Namespace, frames_and_k: list[tuple[np.ndarray, list[float] | None]],
                 **node_options: Any) -> None:
        super().__init__("camera_sim", **node_options)
        frames = [f for f, _ in frames_and_k]
        qos = output_qos(5)  # the sensor-data depth, as camera drivers use
        qos.reliability = RELIABILITY_POLICIES[args.reliability]
        if args.compressed:
            self.msgs = [encode_compressed(CompressedImage(), f, fmt=args.compressed) for f in frames]
            self.image_pub = self.create_publisher(CompressedImage, compressed_topic(INPUT_TOPIC),
                                                   qos)
        else:
            self.msgs = [fill_image(Image(), rgb8_to(args.encoding, f), args.encoding) for f in frames]
            self.image_pub = self.create_publisher(Image, INPUT_TOPIC, qos)
        self.infos = [camera_info(f.shape[0], f.shape[1], args.frame_id, k) for f, k in frames_and_k]
        self.info_pub = self.create_publisher(CameraInfo, CAMERA_INFO, qos)
        for msg in self.msgs:
            msg.header.frame_id = args.frame_id
        self.count = args.count
        self.published = 0
        self.started = time.monotonic()
        self.timer = self.create_timer(1.0 / args.rate, self.publish_next)
        h, w = frames[0].shape[:2]
        self.get_logger().info(
            f"publishing {len(frames)} looped {w}x{h} frames at {args.rate:g} Hz on "
            f"{self.image_pub.topic_name} ({args.compressed or args.encoding}, {args.reliability})")

    def publish_next(self) -> None:
        """Publish the next frame and its camera_info, stamped now (the timer's callback). Once Ctrl-C has
        shut the context down (rclpy's signal handler may do so while this runs) it publishes nothing."""
        i = self.published % len(self.msgs)
        stamp = self.get_clock().now().to_msg()
        msg, info = self.msgs[i], self.infos[i]
        msg.header.stamp = info.header.stamp = stamp
        try:
            self.info_pub.publish(info)
            self.image_pub.publish(msg)
        except Exception:
            if self.context.ok():
                raise
            return
        self.published += 1
        if self.count and self.published >= self.count:
            self.timer.cancel()

    @property
    def done(self) -> bool:
        """True once ``--count`` frames were published."""
        return bool(self.count) and self.published >= self.count


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    argv = sys.argv if argv is None else argv
    args = build_parser().parse_args(remove_ros_args(args=argv)[1:])
    if args.rate <= 0:
        raise SystemExit("--rate must be positive")
    frames = load_frames(args)
    prepare_for_large_frames()
    rclpy.init(args=argv)
    node = CameraSim(args, frames)
    try:
        while rclpy.ok() and not node.done:
            rclpy.spin_once(node, timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        elapsed = time.monotonic() - node.started
        print(f"published {node.published} frames in {elapsed:.1f} s", flush=True)
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
