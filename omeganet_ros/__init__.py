"""omeganet_ros: comprehensive monocular scene understanding (ΩNet, CVPR 2020) for ROS 2.

The core (everything outside ``omeganet_ros.ros``) never imports rclpy or ROS
message packages. The generated interfaces (``omeganet_ros.msg``) may live in a
different install prefix than these sources (a colcon install next to an
editable pip install); ``extend_path`` lets ``import omeganet_ros.msg`` find them.
"""
from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)

__version__ = "0.1.0"
