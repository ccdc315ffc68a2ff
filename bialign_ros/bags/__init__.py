"""rosbag2 recordings (sqlite3 and MCAP) for evaluation: make, read, replay and score bags.

Bags are read and written with the pure-Python ``rosbags`` library, so everything here works
with or without a ROS distro. Only :mod:`bialign_ros.bags.play` and :mod:`bialign_ros.bags.live`
import rclpy; the rest is plain Python and NumPy.
"""
