"""Launch files, parameter file, rviz config and node documentation agree with each other and with the node.

``launch``/``launch_ros`` are not installable on the bare machine, so the launch
files are checked by parsing them (AST) rather than by running them.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from omeganet_ros.ros.parameters import PARAMETERS

REPO = Path(__file__).resolve().parents[1]
README_NODE = REPO / "README.md"  # the node's topics, parameters and launch arguments
LAUNCH_FILES = {"omeganet.launch.py": REPO / "launch" / "omeganet.launch.py",
                "omeganet_bag.launch.py": REPO / "launch" / "omeganet_bag.launch.py"}


def _declared_arguments(path: Path) -> dict[str, dict]:
    """name → keyword arguments (literal values) of every DeclareLaunchArgument(...) call in a launch file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = {}
    for call in ast.walk(tree):
        if isinstance(call, ast.Call) and getattr(call.func, "id", getattr(call.func, "attr", None)) == "DeclareLaunchArgument":
            assert call.args and isinstance(call.args[0], ast.Constant), ast.dump(call)
            kwargs = {}
            for kw in call.keywords:
                try:
                    kwargs[kw.arg] = ast.literal_eval(kw.value)
                except ValueError:
                    kwargs[kw.arg] = ast.unparse(kw.value)
            found[call.args[0].value] = kwargs
    return found


def _readme_table(heading_text: str) -> list[str]:
    """First-column names (in backticks) of the first markdown table after a line containing ``heading_text``."""
    lines = README_NODE.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if heading_text in line)
    names, in_table = [], False
    for line in lines[start + 1:]:
        if line.startswith("|"):
            in_table = True
            match = re.match(r"\|\s*`([^`]+)`", line)
            if match:
                names.append(match.group(1))
        elif in_table:
            break
    return names


@pytest.mark.parametrize("name", sorted(LAUNCH_FILES))
def test_every_launch_argument_is_described_and_documented(name):
    declared = _declared_arguments(LAUNCH_FILES[name])
    assert declared, f"{name}: no DeclareLaunchArgument found"
    for arg, kwargs in declared.items():
        assert isinstance(kwargs.get("description"), str) and len(kwargs["description"]) > 10, f"{name}: {arg}"
    assert _readme_table(f"`launch/{name}`") == list(declared), f"README.md table for {name}"


def test_main_launch_file_has_the_required_arguments():
    declared = _declared_arguments(LAUNCH_FILES["omeganet.launch.py"])
    for required in ("image", "camera_info", "params_file", "namespace", "use_sim_time", "model", "device", "rviz"):
        assert required in declared, required
    source = LAUNCH_FILES["omeganet.launch.py"].read_text()
    assert 'executable="omeganet_node"' in source and "omeganet.rviz" in source


def test_bag_launch_file_plays_with_clock_and_sim_time():
    tree = ast.parse(LAUNCH_FILES["omeganet_bag.launch.py"].read_text())
    lists = [ast.unparse(node) for node in ast.walk(tree) if isinstance(node, ast.List)]
    assert any("'bag'" in text and "'play'" in text and "'--clock'" in text for text in lists), lists
    source = LAUNCH_FILES["omeganet_bag.launch.py"].read_text()
    assert '"use_sim_time": "true"' in source


def test_parameter_file_readme_and_declarations_agree():
    config = yaml.safe_load((REPO / "config" / "omeganet.yaml").read_text())
    values = config["/**"]["ros__parameters"]
    assert list(values) == [p.name for p in PARAMETERS]
    for p in PARAMETERS:
        assert values[p.name] == p.default, p.name
        assert p.description
        if isinstance(p.default, (int, float)) and not isinstance(p.default, bool) and p.range:
            assert p.range[0] <= p.default <= p.range[1], p.name
    assert _readme_table("| parameter |") == [p.name for p in PARAMETERS]


def test_rviz_config_shows_every_visual_output():
    config = yaml.safe_load((REPO / "config" / "omeganet.rviz").read_text())
    displays = config["Visualization Manager"]["Displays"]
    topics = {d["Topic"]["Value"]: d["Class"] for d in displays if "Topic" in d}
    expected = {"/camera/image_raw": "Image", "/omeganet/depth/colored": "Image",
                "/omeganet/semantic/colored": "Image", "/omeganet/motion/mask": "Image",
                "/omeganet/flow/colored": "Image", "/omeganet/instance/colored": "Image",
                "/omeganet/points": "PointCloud2",
                "/omeganet/odometry": "Odometry"}
    for topic, cls in expected.items():
        assert topics.get(topic, "").endswith(cls), (topic, topics)
    assert config["Visualization Manager"]["Global Options"]["Fixed Frame"] == "odom"


def test_node_declares_every_parameter_with_description_and_range(rclpy_available):
    import rclpy

    from omeganet_ros.ros.node import OmeganetNode

    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = OmeganetNode("omeganet_declare_check", context=context)
        descriptors = node.describe_parameters([p.name for p in PARAMETERS])
        for p, d in zip(PARAMETERS, descriptors):
            assert d.description == p.description
            if p.range is not None and isinstance(p.default, float):
                assert (d.floating_point_range[0].from_value, d.floating_point_range[0].to_value) == p.range
            elif p.range is not None:
                assert (d.integer_range[0].from_value, d.integer_range[0].to_value) == p.range
        # Ranges are enforced: a value outside is refused.
        result = node.set_parameters([rclpy.parameter.Parameter("motion_threshold", value=1.5)])[0]
        assert not result.successful
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


def test_motion_threshold_parameter_minus_one_means_the_checkpoints_tau(rclpy_available):
    from omeganet_ros.ros.node import _motion_threshold

    assert _motion_threshold({"motion_threshold": -1.0}) is None  # → SceneEngine uses the calibrated τ
    assert _motion_threshold({"motion_threshold": 0.0}) == 0.0
    assert _motion_threshold({"motion_threshold": 0.7}) == 0.7


def test_runtime_parameter_changes_are_applied_or_refused(rclpy_available):
    """`ros2 param set` never answers "successful" without an effect."""
    import rclpy
    from rclpy.parameter import Parameter

    from omeganet_ros.ros.node import OmeganetNode

    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = OmeganetNode("omeganet_param_check", context=context, parameter_overrides=[
            Parameter("model", value="random"), Parameter("device", value="cpu"), Parameter("num_threads", value=1),
            Parameter("network_width", value=128), Parameter("network_height", value=64)])
        # Unconfigured: valid values are taken (read at configure), values outside the choices refused.
        assert node.set_parameters([Parameter("precision", value="bf16")])[0].successful
        refused = node.set_parameters([Parameter("device", value="tpu")])[0]
        assert not refused.successful and "auto, cpu, cuda" in refused.reason
        assert node.get_parameter("device").value == "cpu"
        assert node.set_parameters([Parameter("precision", value="fp32")])[0].successful
        node.trigger_configure()
        assert node._state_name == "inactive"
        # Configured: engine parameters are refused with the reason, live ones applied at once.
        refused = node.set_parameters([Parameter("device", value="auto")])[0]
        assert not refused.successful and "configure" in refused.reason
        # Re-applying the current values (e.g. `ros2 param load` of the same file) is not a change.
        results = node.set_parameters([Parameter("device", value="cpu"), Parameter(
            "dynamic_classes", value=list(node.get_parameter("dynamic_classes").value))])
        assert all(r.successful for r in results), [r.reason for r in results]
        assert node.get_parameter("device").value == "cpu"
        assert node.set_parameters([Parameter("points_stride", value=2)])[0].successful
        assert node._config["points_stride"] == 2
        node.trigger_cleanup()
        assert node.set_parameters([Parameter("device", value="auto")])[0].successful
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


def _node_with(context, **overrides):
    from rclpy.parameter import Parameter

    from omeganet_ros.ros.node import OmeganetNode

    values = {"model": "random", "device": "cpu", "num_threads": 1, "network_width": 128, "network_height": 64,
              **overrides}
    return OmeganetNode("omeganet_configure_check", context=context,
                        parameter_overrides=[Parameter(k, value=v) for k, v in values.items()])


def test_configure_errors_name_the_real_cause(rclpy_available):
    import rclpy
    import torch

    from omeganet_ros.ros import compat

    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        if not torch.cuda.is_available():
            node = _node_with(context, device="cuda")
            node.trigger_configure()
            assert node._state_name == "unconfigured"
            assert "cannot create the scene engine (device cuda" in node._model_status
            assert "CUDA is not available" in node._model_status and "cannot load model" not in node._model_status
            node.destroy_node()
        if not compat.TF_AVAILABLE:  # the bare-machine set-up: no tf2_ros, no tf2_msgs
            node = _node_with(context, base_frame="base_link")
            node.trigger_configure()
            assert node._state_name == "unconfigured"
            assert "base_frame 'base_link' needs the base_frame → camera transform from TF" in node._model_status
            node.destroy_node()
        node = _node_with(context)  # camera-only odometry needs no TF library
        node.trigger_configure()
        assert node._state_name == "inactive"
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
