"""omeganet_ros: comprehensive monocular scene understanding (ΩNet, CVPR 2020) for ROS 2.

The core (everything outside ``omeganet_ros.ros``) never imports rclpy or ROS
message packages.

The generated interfaces (``omeganet_ros.msg``) are installed by colcon. In a
ROS workspace they sit next to these sources; in the bare-machine set-up (pip
editable install + a colcon build of msg/ only) they live in another prefix,
which is on ``AMENT_PREFIX_PATH``: that prefix's ``omeganet_ros`` folder is
added to this package's search path so ``import omeganet_ros.msg`` resolves.
"""
import os
import sys
from pathlib import Path

__version__ = "0.1.0"


def _interface_dirs() -> list[str]:
    python = f"python{sys.version_info.major}.{sys.version_info.minor}"
    found = []
    for prefix in filter(None, os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)):
        for site in ("site-packages", "dist-packages"):
            candidate = Path(prefix) / "lib" / python / site / __name__
            if (candidate / "msg").is_dir():
                found.append(str(candidate))
    return found


__path__ += [d for d in _interface_dirs() if d not in __path__]
