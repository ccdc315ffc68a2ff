"""The names the ``bialign`` node exposes: node name, input and output topics (pure Python).

Topic names are relative, so a namespace per camera (``namespace:=/front``) relocates all of
them; remap ``image`` to the camera topic.
"""

from __future__ import annotations

NODE_NAME = "bialign"
INPUT_TOPIC = "image"
"""sensor_msgs/Image input; with input_transport compressed, ``image/compressed`` is used."""
COMPRESSED_SUFFIX = "compressed"
CAMERA_INFO = "camera_info"
"""Sibling of the input topic (image_transport's rule), re-published with each label image."""
OUTPUT_TOPICS = {
    "labels": "segmentation/labels",
    "edges": "segmentation/edges",
    "color": "segmentation/color",
    "overlay": "segmentation/overlay",
    "camera_info": "segmentation/camera_info",
    "label_info": "segmentation/label_info",
}
DIAGNOSTICS_TOPIC = "/diagnostics"
CLASS_TABLE_PARAMS = ("class_names", "class_colors")
"""Read-only parameters the node declares once the model is loaded (its class table)."""
