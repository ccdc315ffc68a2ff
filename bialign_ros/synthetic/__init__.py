"""Procedural street scenes with exact Cityscapes labels, for tests, demos and bags without downloads.

``render_scene`` draws one frame of a random street, ``render_sequence`` drives the camera down
it (``sequence_cameras`` gives its camera per frame), and ``write_cityscapes`` stores frames in
the Cityscapes folder layout. Everything is NumPy and OpenCV, deterministic by seed.
"""

from bialign_ros.synthetic.cityscapes_writer import write_cityscapes
from bialign_ros.synthetic.frame import SceneFrame
from bialign_ros.synthetic.sequence import FRAME_RATE, render_scene, render_sequence, sequence_cameras

__all__ = ["FRAME_RATE", "SceneFrame", "render_scene", "render_sequence", "sequence_cameras", "write_cityscapes"]
