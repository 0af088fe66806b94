"""Replay a ROS 2 bag with simulated time through omeganet_node (``ros2 bag play --clock``).

    ros2 launch omeganet_ros omeganet_bag.launch.py bag:=/data/drive_0001 image:=/camera/image_raw rviz:=true

The node runs with use_sim_time so its outputs carry the bag's stamps and the
bag's /clock drives time. Every argument is described (``--show-args``).
"""
from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, IncludeLaunchDescription, TimerAction
from launch.conditions import IfCondition, UnlessCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration


def generate_launch_description():
    share = Path(get_package_share_directory("omeganet_ros"))
    arguments = [
        DeclareLaunchArgument("bag", description="Path of the ROS 2 bag (directory or .mcap/.db3 file) to replay"),
        DeclareLaunchArgument("rate", default_value="1.0", description="Playback rate (1.0 = recorded speed)"),
        DeclareLaunchArgument("loop", default_value="false",
                              description="Replay the bag in a loop (the node restarts its frame buffer and "
                                          "odometry when stamps go back)"),
        DeclareLaunchArgument("start_delay", default_value="3.0",
                              description="Seconds to wait before playing, so that the node has loaded its model"),
        DeclareLaunchArgument("image", default_value="/camera/image_raw", description="Image topic in the bag"),
        DeclareLaunchArgument("camera_info", default_value="/camera/camera_info",
                              description="camera_info topic in the bag (optional)"),
        DeclareLaunchArgument("image_transport", default_value="raw",
                              description="raw (sensor_msgs/Image) or compressed (sensor_msgs/CompressedImage)"),
        DeclareLaunchArgument("params_file", default_value=str(share / "config" / "omeganet.yaml"),
                              description="YAML file with the node's parameters"),
        DeclareLaunchArgument("namespace", default_value="omeganet",
                              description="Namespace of the node and of its output topics"),
        DeclareLaunchArgument("model", default_value="",
                              description="Checkpoint file; empty: the bundled reference checkpoint"),
        DeclareLaunchArgument("device", default_value="auto", description="auto, cpu or cuda"),
        DeclareLaunchArgument("rviz", default_value="false", description="Also start rviz2 with config/omeganet.rviz"),
    ]
    node = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(share / "launch" / "omeganet.launch.py")),
        launch_arguments={
            "image": LaunchConfiguration("image"),
            "camera_info": LaunchConfiguration("camera_info"),
            "image_transport": LaunchConfiguration("image_transport"),
            "params_file": LaunchConfiguration("params_file"),
            "namespace": LaunchConfiguration("namespace"),
            "model": LaunchConfiguration("model"),
            "device": LaunchConfiguration("device"),
            "rviz": LaunchConfiguration("rviz"),
            "use_sim_time": "true",
        }.items(),
    )
    play = ["ros2", "bag", "play", LaunchConfiguration("bag"), "--clock", "--rate", LaunchConfiguration("rate")]
    players = [
        ExecuteProcess(cmd=play, output="screen", condition=UnlessCondition(LaunchConfiguration("loop"))),
        ExecuteProcess(cmd=[*play, "--loop"], output="screen", condition=IfCondition(LaunchConfiguration("loop"))),
    ]
    return LaunchDescription([*arguments, node, TimerAction(period=LaunchConfiguration("start_delay"), actions=players)])
