"""bialign_ros: BiAlignNet semantic segmentation and edge maps for ROS 2 cameras."""

__version__ = "0.1.0"
