"""ROS image messages <-> NumPy arrays, in place of cv_bridge, without importing ROS.

Every function takes any object with the fields of ``sensor_msgs/Image`` (``height, width,
encoding, is_bigendian, step, data``) or ``sensor_msgs/CompressedImage`` (``format, data``):
rclpy messages, rosbags messages or plain objects. Malformed input raises :class:`CodecError`.
"""

from bialign_ros.codec.compressed import COMPRESSED_FORMATS, compressed_to_rgb8, encode_compressed
from bialign_ros.codec.encodings import SUPPORTED_ENCODINGS
from bialign_ros.codec.errors import CodecError
from bialign_ros.codec.message import message_to_rgb8
from bialign_ros.codec.raw import fill_image, image_to_array
from bialign_ros.codec.rgb import CONVERTIBLE_ENCODINGS, image_to_rgb8, rgb8_to

__all__ = [
    "COMPRESSED_FORMATS",
    "CONVERTIBLE_ENCODINGS",
    "SUPPORTED_ENCODINGS",
    "CodecError",
    "compressed_to_rgb8",
    "encode_compressed",
    "fill_image",
    "image_to_array",
    "image_to_rgb8",
    "message_to_rgb8",
    "rgb8_to",
]
