"""Packaging contracts: a ROS-free core, the installed share/ folder, console scripts."""
from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

ROS_MODULE_PREFIXES = ("rclpy", "rosidl", "rmw", "rcl_interfaces", "builtin_interfaces", "std_msgs", "sensor_msgs",
                       "geometry_msgs", "nav_msgs", "diagnostic_msgs", "visualization_msgs", "tf2_ros", "cv_bridge",
                       "message_filters", "sensor_msgs_py", "omeganet_ros.msg", "omeganet_ros.ros")


def core_modules() -> list[str]:
    import omeganet_ros

    names = ["omeganet_ros"]
    for info in pkgutil.walk_packages([str(REPO / "omeganet_ros")], prefix="omeganet_ros."):
        if info.name.startswith(("omeganet_ros.ros", "omeganet_ros.msg")):
            continue
        names.append(info.name)
    assert omeganet_ros.__file__.startswith(str(REPO)), "the tests must run against this checkout"
    return names


def test_core_does_not_import_ros():
    modules = core_modules()
    assert "omeganet_ros.geometry" in modules
    code = (
        "import importlib, sys, json\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        f"bad = sorted(m for m in sys.modules if m.startswith({ROS_MODULE_PREFIXES!r}))\n"
        "print(json.dumps(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]", f"core imported ROS modules: {result.stdout}"


def test_share_folder_is_installed(rclpy_available):
    from ament_index_python.packages import get_package_share_directory

    share = Path(get_package_share_directory("omeganet_ros"))
    assert (share / "package.xml").is_file()
    assert (share / "launch").is_dir() and (share / "config").is_dir()
    assert (share / "config" / "fastdds_local.xml").is_file()


def _console_scripts() -> dict[str, str]:
    """name → "module:function" from setup.py's CONSOLE_SCRIPTS (read, not executed)."""
    tree = ast.parse((REPO / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "CONSOLE_SCRIPTS" for t in node.targets):
            return dict(entry.replace(" ", "").split("=", 1) for entry in ast.literal_eval(node.value))
    raise AssertionError("setup.py has no CONSOLE_SCRIPTS list")


@pytest.mark.parametrize("name", sorted(_console_scripts()))
def test_console_script_is_installed_and_answers_help(name):
    """Every console script of setup.py is on the venv's PATH and prints its usage."""
    executable = Path(sys.prefix) / "bin" / name
    if not executable.exists():
        pytest.skip(f"{name} is not installed in {sys.prefix} (run `make setup`)")
    result = subprocess.run([str(executable), "--help"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "usage:" in result.stdout
