"""Replay a ROS 2 bag with simulated time through omeganet_node (``ros2 bag play --clock``).

    ros2 launch omeganet_ros omeganet_bag.launch.py bag:=/data/drive_0001 image:=/camera/image_raw rviz:=true

Lifecycle-aware: this launch file drives the node's transitions itself (configure, then activate) and
starts playback when the node reports *active*, however long loading the model takes, so the start of
the bag is never lost. When configure fails, nothing is played and the launch shuts down. The node runs
with use_sim_time so its outputs carry the bag's stamps and the bag's /clock drives time. Every argument
is described (``--show-args``).
"""
from pathlib import Path

from ament_index_python.packages import PackageNotFoundError, get_package_prefix, get_package_share_directory
from launch import LaunchDescription
from launch.actions import (DeclareLaunchArgument, EmitEvent, ExecuteProcess, IncludeLaunchDescription, LogInfo,
                            OpaqueFunction, RegisterEventHandler, Shutdown)
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from lifecycle_msgs.msg import Transition


def _is_omeganet_node(action) -> bool:
    return isinstance(action, LifecycleNode) and action.node_name.rsplit("/", 1)[-1] == "omeganet_node"


def _transition(transition_id: int) -> EmitEvent:
    return EmitEvent(event=ChangeState(lifecycle_node_matcher=_is_omeganet_node, transition_id=transition_id))


def _players(context):
    try:
        get_package_prefix("ros2bag")
    except PackageNotFoundError:
        return [LogInfo(msg="cannot play the bag: ros2bag is not installed (apt install ros-$ROS_DISTRO-ros2bag); "
                            "omeganet_node stays active for another publisher")]
    cmd = ["ros2", "bag", "play", LaunchConfiguration("bag").perform(context), "--clock",
           "--rate", LaunchConfiguration("rate").perform(context)]
    if LaunchConfiguration("loop").perform(context) == "true":
        cmd.append("--loop")
    return [ExecuteProcess(cmd=cmd, output="screen", name="bag_play")]


def generate_launch_description():
    share = Path(get_package_share_directory("omeganet_ros"))
    arguments = [
        DeclareLaunchArgument("bag", description="Path of the ROS 2 bag (directory or .mcap/.db3 file) to replay"),
        DeclareLaunchArgument("rate", default_value="1.0", description="Playback rate (1.0 = recorded speed)"),
        DeclareLaunchArgument("loop", default_value="false", choices=["true", "false"],
                              description="Replay the bag in a loop (the node restarts its frame buffer and "
                                          "odometry when stamps go back)"),
        DeclareLaunchArgument("image", default_value="/camera/image_raw", description="Image topic in the bag"),
        DeclareLaunchArgument("camera_info", default_value="/camera/camera_info",
                              description="camera_info topic in the bag (optional)"),
        DeclareLaunchArgument("image_transport", default_value="", choices=["", "raw", "compressed"],
                              description="raw (sensor_msgs/Image) or compressed (sensor_msgs/CompressedImage); "
                                          "empty: the params_file's value"),
        DeclareLaunchArgument("params_file", default_value=str(share / "config" / "omeganet.yaml"),
                              description="YAML file with the node's parameters"),
        DeclareLaunchArgument("namespace", default_value="omeganet",
                              description="Namespace of the node and of its output topics"),
        DeclareLaunchArgument("model", default_value="",
                              description="Checkpoint file; empty: the params_file's value"),
        DeclareLaunchArgument("device", default_value="", choices=["", "auto", "cpu", "cuda"],
                              description="auto, cpu or cuda; empty: the params_file's value"),
        DeclareLaunchArgument("rviz", default_value="false", choices=["true", "false"],
                              description="Also start rviz2 (skipped with a message when rviz2 is not installed)"),
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
            "autostart": "false",  # this launch file drives the transitions
        }.items(),
    )
    handlers = [
        RegisterEventHandler(OnStateTransition(
            start_state="configuring", goal_state="inactive", handle_once=True,
            entities=[_transition(Transition.TRANSITION_ACTIVATE)])),
        RegisterEventHandler(OnStateTransition(
            start_state="configuring", goal_state="unconfigured", handle_once=True,
            entities=[LogInfo(msg="omeganet_node failed to configure (see its log): not playing the bag"),
                      Shutdown(reason="omeganet_node failed to configure")])),
        RegisterEventHandler(OnStateTransition(
            start_state="activating", goal_state="active", handle_once=True,
            entities=[LogInfo(msg="omeganet_node is active: starting playback"), OpaqueFunction(function=_players)])),
    ]
    return LaunchDescription([*arguments, *handlers, node, _transition(Transition.TRANSITION_CONFIGURE)])
