"""Start omeganet_node on a camera stream, optionally with rviz.

    ros2 launch omeganet_ros omeganet.launch.py image:=/camera/image_raw camera_info:=/camera/camera_info

Every argument is described (``ros2 launch omeganet_ros omeganet.launch.py --show-args``).
"""
from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue


def generate_launch_description():
    share = Path(get_package_share_directory("omeganet_ros"))
    arguments = [
        DeclareLaunchArgument("image", default_value="/camera/image_raw",
                              description="Input image topic (sensor_msgs/Image); with image_transport:=compressed "
                                          "the node subscribes to <image>/compressed"),
        DeclareLaunchArgument("camera_info", default_value="/camera/camera_info",
                              description="Input camera_info topic (optional: without a valid one the node uses "
                                          "CamNet's estimated intrinsics)"),
        DeclareLaunchArgument("image_transport", default_value="raw",
                              description="raw (sensor_msgs/Image) or compressed (sensor_msgs/CompressedImage)"),
        DeclareLaunchArgument("params_file", default_value=str(share / "config" / "omeganet.yaml"),
                              description="YAML file with the node's parameters"),
        DeclareLaunchArgument("namespace", default_value="omeganet",
                              description="Namespace of the node and of its output topics"),
        DeclareLaunchArgument("use_sim_time", default_value="false",
                              description="Use /clock (true when replaying a bag with --clock)"),
        DeclareLaunchArgument("model", default_value="",
                              description="Checkpoint file; empty: the bundled reference checkpoint"),
        DeclareLaunchArgument("device", default_value="auto", description="auto, cpu or cuda"),
        DeclareLaunchArgument("rviz", default_value="false", description="Also start rviz2 with config/omeganet.rviz"),
        DeclareLaunchArgument("rviz_config", default_value=str(share / "config" / "omeganet.rviz"),
                              description="rviz2 configuration file used when rviz:=true"),
        DeclareLaunchArgument("log_level", default_value="info", description="Logging level of the node"),
    ]
    image = LaunchConfiguration("image")
    node = Node(
        package="omeganet_ros",
        executable="omeganet_node",
        name="omeganet_node",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool),
                "model": ParameterValue(LaunchConfiguration("model"), value_type=str),
                "device": ParameterValue(LaunchConfiguration("device"), value_type=str),
                "image_transport": ParameterValue(LaunchConfiguration("image_transport"), value_type=str),
            },
        ],
        remappings=[
            ("image", image),
            ("image/compressed", [image, "/compressed"]),
            ("camera_info", LaunchConfiguration("camera_info")),
        ],
        ros_arguments=["--log-level", LaunchConfiguration("log_level")],
    )
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="omeganet_rviz",
        arguments=["-d", LaunchConfiguration("rviz_config")],
        parameters=[{"use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool)}],
        condition=IfCondition(LaunchConfiguration("rviz")),
        output="log",
    )
    return LaunchDescription([*arguments, node, rviz])
