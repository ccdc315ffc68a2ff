"""Training and evaluation of BiAlignNet on Cityscapes-format data (``python -m training.train``).

The model definition comes from :mod:`bialign_ros.model` and checkpoints are written in the
runtime's own format (:mod:`bialign_ros.checkpoint`), so the ROS node loads them directly.
"""
