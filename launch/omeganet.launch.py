"""Start omeganet_node (a lifecycle node) on a camera stream, optionally with rviz.

    ros2 launch omeganet_ros omeganet.launch.py image:=/camera/image_raw camera_info:=/camera/camera_info

Every argument is described (``ros2 launch omeganet_ros omeganet.launch.py --show-args``). The node's
parameters come from ``params_file``; the arguments model, device, image_transport, autostart and
use_sim_time override it only when given (empty by default).
"""
import tempfile
from pathlib import Path

import yaml
from ament_index_python.packages import PackageNotFoundError, get_package_prefix, get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, LogInfo, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node

# Launch arguments that override a node parameter when not empty, and the parameter's type.
OVERRIDES = {"model": str, "device": str, "image_transport": str, "autostart": bool, "use_sim_time": bool}
# Names in the bundled rviz config that follow the launch arguments.
RVIZ_NAMESPACE, RVIZ_IMAGE, RVIZ_FIXED_FRAME = "/omeganet/", "/camera/image_raw", "odom"


def _odom_frame(params_file: str) -> str:
    """The node's odom_frame in a ROS 2 parameters file (the node's default, odom, when not set)."""
    try:
        entries = yaml.safe_load(Path(params_file).read_text()) or {}
    except (OSError, yaml.YAMLError):
        return RVIZ_FIXED_FRAME
    for entry in entries.values():
        frame = ((entry or {}).get("ros__parameters") or {}).get("odom_frame")
        if frame:
            return frame
    return RVIZ_FIXED_FRAME


def _rviz_config(template: Path, namespace: str, image: str, fixed_frame: str) -> str:
    """The bundled rviz config with the node's namespace, the input image topic and the odom frame; a temp file."""
    config = yaml.safe_load(template.read_text())
    prefix = "/" + namespace.strip("/") + "/" if namespace.strip("/") else "/"
    for display in config["Visualization Manager"]["Displays"]:
        topic = display.get("Topic", {})
        value = topic.get("Value", "")
        if value == RVIZ_IMAGE:
            topic["Value"] = image
        elif value.startswith(RVIZ_NAMESPACE):
            topic["Value"] = prefix + value[len(RVIZ_NAMESPACE):]
    config["Visualization Manager"]["Global Options"]["Fixed Frame"] = fixed_frame
    out = tempfile.NamedTemporaryFile("w", prefix="omeganet_", suffix=".rviz", delete=False)
    with out:
        yaml.safe_dump(config, out, sort_keys=False)
    return out.name


def _launch_setup(context):
    def arg(name):
        return LaunchConfiguration(name).perform(context)

    overrides = {name: (arg(name) == "true" if kind is bool else arg(name))
                 for name, kind in OVERRIDES.items() if arg(name) != ""}
    namespace, image, params_file = arg("namespace"), arg("image"), arg("params_file")
    node = LifecycleNode(
        package="omeganet_ros",
        executable="omeganet_node",
        name="omeganet_node",
        namespace=namespace,
        output="screen",
        parameters=[params_file, overrides] if overrides else [params_file],
        remappings=[("image", image), ("image/compressed", image + "/compressed"),
                    ("camera_info", arg("camera_info"))],
        ros_arguments=["--log-level", arg("log_level")],
    )
    actions = [node]
    if arg("rviz") == "true":
        try:
            get_package_prefix("rviz2")
        except PackageNotFoundError:
            # Checked before starting anything: launch would abort on the missing package and orphan the node.
            actions.append(LogInfo(msg="rviz:=true but rviz2 is not installed (apt install ros-$ROS_DISTRO-rviz2); "
                                       "omeganet_node runs without it"))
        else:
            config = arg("rviz_config") or _rviz_config(
                Path(get_package_share_directory("omeganet_ros")) / "config" / "omeganet.rviz",
                namespace, image, _odom_frame(params_file))
            actions.append(Node(package="rviz2", executable="rviz2", name="omeganet_rviz", namespace=namespace,
                                arguments=["-d", config], output="log",
                                parameters=[{"use_sim_time": overrides.get("use_sim_time", False)}]))
    return actions


def generate_launch_description():
    share = Path(get_package_share_directory("omeganet_ros"))
    arguments = [
        DeclareLaunchArgument("image", default_value="/camera/image_raw",
                              description="Input image topic (sensor_msgs/Image); with image_transport:=compressed "
                                          "the node subscribes to <image>/compressed"),
        DeclareLaunchArgument("camera_info", default_value="/camera/camera_info",
                              description="Input camera_info topic (optional: without a valid one the node uses "
                                          "CamNet's estimated intrinsics)"),
        DeclareLaunchArgument("image_transport", default_value="", choices=["", "raw", "compressed"],
                              description="raw (sensor_msgs/Image) or compressed (sensor_msgs/CompressedImage); "
                                          "empty: the params_file's value"),
        DeclareLaunchArgument("params_file", default_value=str(share / "config" / "omeganet.yaml"),
                              description="YAML file with the node's parameters"),
        DeclareLaunchArgument("namespace", default_value="omeganet",
                              description="Namespace of the node and of its output topics"),
        DeclareLaunchArgument("use_sim_time", default_value="", choices=["", "true", "false"],
                              description="Use /clock (true when replaying a bag with --clock); "
                                          "empty: the params_file's value (false if absent)"),
        DeclareLaunchArgument("model", default_value="",
                              description="Checkpoint file; empty: the params_file's value (there, empty = the "
                                          "bundled reference checkpoint)"),
        DeclareLaunchArgument("device", default_value="", choices=["", "auto", "cpu", "cuda"],
                              description="auto, cpu or cuda; empty: the params_file's value"),
        DeclareLaunchArgument("autostart", default_value="", choices=["", "true", "false"],
                              description="Configure and activate on start-up; false: wait for lifecycle "
                                          "transitions; empty: the params_file's value"),
        DeclareLaunchArgument("rviz", default_value="false", choices=["true", "false"],
                              description="Also start rviz2 (skipped with a message when rviz2 is not installed)"),
        DeclareLaunchArgument("rviz_config", default_value="",
                              description="rviz2 configuration file used when rviz:=true; empty: config/omeganet.rviz "
                                          "with this namespace, image topic and the params_file's odom_frame"),
        DeclareLaunchArgument("log_level", default_value="info",
                              choices=["debug", "info", "warn", "error", "fatal"],
                              description="Logging level of the node"),
    ]
    return LaunchDescription([*arguments, OpaqueFunction(function=_launch_setup)])
