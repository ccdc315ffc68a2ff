"""ament_python package definition for bialign_ros.

ROS 2 Python packages (rclpy, sensor_msgs, ...) are deliberately absent from
install_requires: a ROS distro provides them, and the pip environment installs
them from requirements/ros-*.txt.
"""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "bialign_ros"

CONSOLE_SCRIPTS = [
    "bialign_segment = bialign_ros.cli.segment:main",
    "bialign_benchmark = bialign_ros.cli.benchmark:main",
    "bialign_convert = bialign_ros.cli.convert:main",
    "bialign_synth = bialign_ros.cli.synth:main",
    "bialign_node = bialign_ros.node:main",
    "bialign_camera_sim = bialign_ros.cli.camera_sim:main",
    "bialign_node_benchmark = bialign_ros.cli.node_benchmark:main",
    "bialign_ros_demo = bialign_ros.cli.ros_demo:main",
    "bialign_make_bag = bialign_ros.cli.make_bag:main",
    "bialign_bag_play = bialign_ros.cli.bag_play:main",
    "bialign_bag_eval = bialign_ros.cli.bag_eval:main",
    "bialign_eval_live = bialign_ros.cli.eval_live:main",
    "bialign_export = bialign_ros.cli.export:main",
    "bialign_quantize = bialign_ros.cli.quantize:main",
]

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.rviz") + glob("config/*.xml")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="bialign_ros maintainers",
    maintainer_email="maintainers@bialign-ros.org",
    description="Real-time semantic segmentation and edge maps for ROS 2 cameras with BiAlignNet.",
    license="Apache-2.0",
    python_requires=">=3.10",
    entry_points={"console_scripts": CONSOLE_SCRIPTS},
)
