"""Launch the bialign node on one camera, or on several, optionally with RViz.

    ros2 launch bialign_ros bialign.launch.py camera:=/front/image_raw weights:=/path/model.pt
    ros2 launch bialign_ros bialign.launch.py camera:=/front/image_raw namespace:=front rviz:=true
    ros2 launch bialign_ros bialign.launch.py cameras:="[front, left]" weights:=/path/model.pt
    ros2 launch bialign_ros bialign.launch.py camera:=/front/image_raw image_transport:=compressed
    ros2 launch bialign_ros bialign.launch.py camera:=/front/image_rect depth:=/front/depth_registered/image_rect

Outputs appear under ``<namespace>/segmentation/``; with ``cameras``, under
``<namespace>/<C>/segmentation/`` for each camera C, whose input is ``<namespace>/<C>/image``
(``camera`` and RViz then do not apply). Unless FASTDDS_DEFAULT_PROFILES_FILE (or
FASTRTPS_DEFAULT_PROFILES_FILE) is already set, the shipped Fast DDS transport profile for
full-resolution frames is set for every process this launch starts; start the camera driver
with the same profile (see config/fastdds_large_frames.xml).
"""

import os

from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from bialign_ros.transport import LEGACY_PROFILE_ENV, PROFILE_ENV, PROFILE_NAME, profile_env_var, uses_fastdds

PACKAGE = "bialign_ros"


def bialign_node(context: LaunchContext) -> list[Node]:
    """The node, with the launch arguments that override the params file."""
    overrides = {"weights": LaunchConfiguration("weights"), "device": LaunchConfiguration("device")}
    # launch_ros refuses an empty list, and passing none keeps the params file's value (for the
    # transport too: a params file setting the older input_transport keeps working).
    for name in ("cameras", "image_transport"):
        if LaunchConfiguration(name).perform(context).strip():
            overrides[name] = LaunchConfiguration(name)
    return [Node(
        package=PACKAGE,
        executable="bialign_node",
        name="bialign",
        namespace=LaunchConfiguration("namespace"),
        parameters=[LaunchConfiguration("params_file"), overrides],
        remappings=[("image", LaunchConfiguration("camera")), ("depth", LaunchConfiguration("depth"))],
        output="screen",
        emulate_tty=True,
    )]


def generate_launch_description() -> LaunchDescription:
    """The launch arguments, the transport profile, the node and (optionally) RViz."""
    share = FindPackageShare(PACKAGE)
    camera = LaunchConfiguration("camera")
    namespace = LaunchConfiguration("namespace")
    arguments = [
        DeclareLaunchArgument("camera", default_value="/camera/image_raw",
                              description="Camera image topic (sensor_msgs/Image); its camera_info sibling is "
                                          "used too. With image_transport compressed, <camera>/compressed."),
        DeclareLaunchArgument("depth", default_value="depth",
                              description="Depth image registered to the camera (16UC1 mm or 32FC1 m), for "
                                          "segmentation/points; by default 'depth' in the node's namespace."),
        DeclareLaunchArgument(
            "cameras", default_value="",
            description="Several cameras in one node, e.g. \"[front, left]\": camera C is read from "
                        "<namespace>/C/image and written to <namespace>/C/segmentation/*. Empty: as the "
                        "params file says (by default one camera, on 'camera')."),
        DeclareLaunchArgument("image_transport", default_value="",
                              description="raw (sensor_msgs/Image) or compressed (<camera>/compressed, "
                                          "sensor_msgs/CompressedImage). Empty: as the params file says "
                                          "(image_transport or its older name input_transport; raw by default)."),
        DeclareLaunchArgument("namespace", default_value="",
                              description="Namespace of the node and its outputs, e.g. front (one per camera)."),
        DeclareLaunchArgument("params_file", default_value=PathJoinSubstitution([share, "config", "bialign.yaml"]),
                              description="Parameter file in ros__parameters format."),
        DeclareLaunchArgument("weights", description="bialign_ros checkpoint (.pt) to run (required)."),
        DeclareLaunchArgument("device", default_value="auto", description="auto, cpu, cuda or cuda:N."),
        DeclareLaunchArgument("rviz", default_value="false", choices=["true", "false"],
                              description="Also start RViz with config/bialign.rviz."),
    ]
    actions = []
    if PROFILE_ENV not in os.environ and LEGACY_PROFILE_ENV not in os.environ and uses_fastdds(os.environ):
        actions.append(SetEnvironmentVariable(profile_env_var(os.environ),
                                              PathJoinSubstitution([share, "config", PROFILE_NAME])))
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="bialign_rviz",
        namespace=namespace,
        arguments=["-d", PathJoinSubstitution([share, "config", "bialign.rviz"])],
        remappings=[("image", camera)],
        condition=IfCondition(LaunchConfiguration("rviz")),
    )
    return LaunchDescription([*arguments, *actions, OpaqueFunction(function=bialign_node), rviz])
