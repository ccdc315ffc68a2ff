"""The names the ``bialign`` node exposes: node name, input and output topics (pure Python).

Topic names are relative, so a namespace per camera (``namespace:=/front``) relocates all of
them; remap ``image`` to the camera topic. A node serving several cameras (parameter
``cameras``) puts each camera's topics under its name: ``front/image``,
``front/segmentation/labels``, ...
"""

from __future__ import annotations

NODE_NAME = "bialign"
INPUT_TOPIC = "image"
"""sensor_msgs/Image input; with input_transport compressed, ``image/compressed`` is used."""
COMPRESSED_SUFFIX = "compressed"
DEPTH_TOPIC = "depth"
"""Depth registered to the camera (16UC1 mm or 32FC1 m, as depth_image_proc), for segmentation/points."""
CAMERA_INFO = "camera_info"
"""Sibling of the input topic (image_transport's rule), re-published with each label image."""
OUTPUT_TOPICS = {
    "labels": "segmentation/labels",
    "edges": "segmentation/edges",
    "color": "segmentation/color",
    "overlay": "segmentation/overlay",
    "confidence": "segmentation/confidence",
    "free_space": "segmentation/free_space",
    "grid": "segmentation/grid",
    "points": "segmentation/points",
    "camera_info": "segmentation/camera_info",
    "label_info": "segmentation/label_info",
}
DIAGNOSTICS_TOPIC = "/diagnostics"
CLASS_TABLE_PARAMS = ("class_names", "class_colors")
"""Read-only parameters the node declares once the model is loaded (its class table)."""


def camera_topic(camera: str, topic: str) -> str:
    """The relative name of ``topic`` for ``camera``: ``camera/topic``, or ``topic`` itself for ''."""
    return f"{camera}/{topic}" if camera else topic


def compressed_topic(image_topic: str) -> str:
    """The ``sensor_msgs/CompressedImage`` sibling of an image topic: ``image`` -> ``image/compressed``."""
    return f"{image_topic.rstrip('/')}/{COMPRESSED_SUFFIX}"


def diagnostic_name(node_name: str, camera: str = "") -> str:
    """Name of the node's status in /diagnostics, or of one camera's status with ``camera``."""
    return f"{node_name}: camera {camera}" if camera else f"{node_name}: segmentation"
