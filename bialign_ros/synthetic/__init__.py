"""Procedural street scenes with exact Cityscapes labels, for tests, demos and bags without downloads.

``render_scene`` draws one frame of a random street, ``render_sequence`` drives the camera down
it (``sequence_cameras`` gives its camera per frame), and ``write_cityscapes`` stores frames in
the Cityscapes folder layout; ``to_five_classes`` relabels their train IDs into a five-class table
of one's own (:mod:`bialign_ros.synthetic.five_classes`), and ``write_own_classes`` stores frames
in that table's own-classes layout (``classes.yaml``, ``images/``, ``labels/``). Everything is
NumPy and OpenCV, deterministic by seed.
"""

from bialign_ros.synthetic.cityscapes_writer import write_cityscapes
from bialign_ros.synthetic.five_classes import FIVE_CLASS_COLORS, FIVE_CLASS_NAMES, to_five_classes
from bialign_ros.synthetic.frame import SceneFrame
from bialign_ros.synthetic.own_classes_writer import write_own_classes
from bialign_ros.synthetic.sequence import FRAME_RATE, render_scene, render_sequence, sequence_cameras

__all__ = ["FIVE_CLASS_COLORS", "FIVE_CLASS_NAMES", "FRAME_RATE", "SceneFrame", "render_scene", "render_sequence",
           "sequence_cameras", "to_five_classes", "write_cityscapes", "write_own_classes"]
