"""The one place that chooses between the real-ROS helper libraries and omeganet_ros's small fallbacks.

A ROS 2 install (Jazzy, Kilted) has ``cv_bridge``, ``message_filters``,
``sensor_msgs_py`` and ``tf2_ros``; the node uses them there, except
sensor_msgs_py (below). The bare-machine set-up (ROS 2 from PyPI wheels)
cannot install them, so each has a fallback here with the same behaviour for
what the node needs:

===============  ==========================================  ============================================
library          used for                                    fallback
===============  ==========================================  ============================================
cv_bridge        Image ↔ numpy                               ``omeganet_ros.data.rosbag_io`` codec (also
                                                             when cv_bridge lacks a conversion)
message_filters  camera_info cache, lookup by nearest stamp  :class:`StampCache` on a plain subscription
tf2_ros          odom → camera transform on /tf              ``tf2_msgs/TFMessage`` on /tf if importable,
                                                             else none (reported on /diagnostics)
===============  ==========================================  ============================================

Point clouds are always written with numpy: ``sensor_msgs_py.create_cloud``
differs between distributions (some versions cast every field to the first
field's type) and this cloud mixes float32 and uint32 fields.

:data:`BACKENDS` says which one is in use (shown on /diagnostics). Setting the
environment variable ``OMEGANET_ROS_FORCE_FALLBACK=1`` before import selects
the fallbacks even where the libraries exist (for comparing both paths).
"""
from __future__ import annotations

import bisect
import os
import sys
from typing import Any, Callable

import numpy as np

from ..data import rosbag_io

_FORCE_FALLBACK = os.environ.get("OMEGANET_ROS_FORCE_FALLBACK", "") not in ("", "0")


def _optional_import(name: str):
    if _FORCE_FALLBACK:
        return None
    try:
        return __import__(name, fromlist=["_"])
    except Exception:  # ImportError, or a broken install (e.g. ROS 1 cv_bridge on NumPy 2)
        return None


_cv_bridge = _optional_import("cv_bridge")
_message_filters = _optional_import("message_filters")
_tf2_ros = _optional_import("tf2_ros")
_tf2_msgs = _optional_import("tf2_msgs.msg")

BACKENDS: dict[str, str] = {
    "image_conversion": "cv_bridge" if _cv_bridge is not None else "fallback (omeganet_ros.data.rosbag_io)",
    "camera_info_sync": "message_filters.Cache" if _message_filters is not None else "fallback (StampCache)",
    "point_cloud": "numpy (same layout with or without sensor_msgs_py)",
    "tf": ("tf2_ros" if _tf2_ros is not None else
           "fallback (tf2_msgs/TFMessage on /tf)" if _tf2_msgs is not None else
           "none: neither tf2_ros nor tf2_msgs is importable, TF not published"),
}


# ------------------------------------------------------------------------------------------ images

_bridge = _cv_bridge.CvBridge() if _cv_bridge is not None else None


def image_msg_to_rgb8(msg) -> np.ndarray:
    """sensor_msgs/Image (colour, mono, 16-bit, Bayer) → H×W×3 uint8 RGB; ``ValueError`` when not convertible.

    The message's fields (sizes, encoding, step, data length) are checked by
    the codec in both cases, so both backends reject the same input.
    """
    if _bridge is not None:
        rosbag_io.image_to_numpy(msg)  # the codec's field checks first, so both backends reject the same input
        try:
            return np.ascontiguousarray(_bridge.imgmsg_to_cv2(msg, desired_encoding="rgb8"))
        except Exception:  # CvBridgeError or cv2.error: e.g. a conversion cv_bridge lacks; the codec decides
            pass
    return rosbag_io.image_to_rgb8(msg)


def compressed_msg_to_rgb8(msg) -> np.ndarray:
    """sensor_msgs/CompressedImage → H×W×3 uint8 RGB; ``ValueError`` when the bytes do not decode."""
    if _bridge is not None:
        try:
            return np.ascontiguousarray(_bridge.compressed_imgmsg_to_cv2(msg, desired_encoding="rgb8"))
        except Exception:  # not decodable by cv_bridge: the codec decides (and raises ValueError)
            pass
    return rosbag_io.compressed_to_rgb8(msg.format, msg.data)


def array_to_image_msg(array: np.ndarray, encoding: str, header) -> Any:
    """H×W or H×W×C array → sensor_msgs/Image with ``header`` (32FC1, 32FC2, mono8, rgb8, …)."""
    from sensor_msgs.msg import Image

    if _bridge is not None:
        msg = _bridge.cv2_to_imgmsg(np.ascontiguousarray(array), encoding=encoding)
        msg.header = header
        return msg
    fields = rosbag_io.numpy_to_image_fields(array, encoding)
    msg = Image()
    msg.header = header
    msg.height, msg.width = fields["height"], fields["width"]
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = fields["step"]
    msg.data = fields["data"].tobytes()
    return msg


# ------------------------------------------------------------------------------ camera_info pairing

def stamp_ns(stamp) -> int:
    """builtin_interfaces/Time → integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


class StampCache:
    """The last ``size`` stamped messages, looked up by the nearest stamp (message_filters.Cache fallback)."""

    def __init__(self, size: int = 30):
        self.size = int(size)
        self._stamps: list[int] = []
        self._messages: list[Any] = []

    def add(self, msg) -> None:
        stamp = stamp_ns(msg.header.stamp)
        index = bisect.bisect_right(self._stamps, stamp)
        self._stamps.insert(index, stamp)
        self._messages.insert(index, msg)
        if len(self._stamps) > self.size:
            # Drop the oldest by stamp: a looping bag's new (earlier) stamps keep their place.
            del self._stamps[0]
            del self._messages[0]

    def clear(self) -> None:
        self._stamps.clear()
        self._messages.clear()

    def nearest(self, stamp: int, slop: int) -> Any | None:
        """The message whose stamp is closest to ``stamp`` (ns) and within ``slop`` (ns), or None."""
        index = bisect.bisect_left(self._stamps, stamp)
        best, best_gap = None, None
        for i in (index - 1, index):
            if 0 <= i < len(self._stamps):
                gap = abs(self._stamps[i] - stamp)
                if gap <= slop and (best_gap is None or gap < best_gap):
                    best, best_gap = self._messages[i], gap
        return best

    def __len__(self) -> int:
        return len(self._stamps)


class CameraInfoSource:
    """Subscribes to camera_info and finds the message nearest to an image stamp.

    With message_filters: a ``message_filters.Subscriber`` feeding a
    ``message_filters.Cache``, queried before and after the stamp. Without: a
    plain subscription feeding a :class:`StampCache`. ``on_message`` is called
    for every camera_info received (the node validates and counts them there).
    """

    def __init__(self, node, msg_type, topic: str, qos, on_message: Callable, callback_group=None, size: int = 30):
        self._node = node
        self._on_message = on_message
        if _message_filters is not None:
            from rclpy.clock import ClockType
            from rclpy.time import Time

            # message_filters.Cache stores Time.from_msg(stamp), whose clock type is ROS_TIME.
            self._time = lambda nanoseconds: Time(nanoseconds=nanoseconds, clock_type=ClockType.ROS_TIME)
            self._subscriber = _message_filters.Subscriber(node, msg_type, topic, qos_profile=qos,
                                                           callback_group=callback_group)
            self._cache = _message_filters.Cache(self._subscriber, size)
            self._cache.registerCallback(on_message)
            self._subscription = self._subscriber.sub
        else:
            self._cache = StampCache(size)
            self._subscription = node.create_subscription(msg_type, topic, self._add, qos,
                                                          callback_group=callback_group)

    def _add(self, msg) -> None:
        self._cache.add(msg)
        self._on_message(msg)

    def nearest(self, stamp: int, slop: int):
        """The camera_info nearest to ``stamp`` (ns) within ``slop`` (ns), or None."""
        if isinstance(self._cache, StampCache):
            return self._cache.nearest(stamp, slop)
        t = self._time(nanoseconds=stamp)
        candidates = [m for m in (self._cache.getElemBeforeTime(t), self._cache.getElemAfterTime(t)) if m is not None]
        candidates = [(abs(stamp_ns(m.header.stamp) - stamp), i, m) for i, m in enumerate(candidates)]
        candidates = [c for c in candidates if c[0] <= slop]
        return min(candidates)[2] if candidates else None

    def destroy(self) -> None:
        self._node.destroy_subscription(self._subscription)


# ------------------------------------------------------------------------------------- point clouds

def create_cloud(header, fields, points: np.ndarray):
    """sensor_msgs/PointCloud2 (unorganised, height 1) from an N structured array laid out as ``fields``."""
    from sensor_msgs.msg import PointCloud2

    cloud = PointCloud2()
    cloud.header = header
    cloud.height, cloud.width = 1, len(points)
    cloud.fields = list(fields)
    cloud.is_bigendian = sys.byteorder != "little"
    cloud.point_step = points.dtype.itemsize
    cloud.row_step = cloud.point_step * len(points)
    cloud.is_dense = True
    cloud.data = np.ascontiguousarray(points).tobytes()
    return cloud


# --------------------------------------------------------------------------------------------- TF

class TransformPublisher:
    """Broadcasts TransformStamped messages on /tf (tf2_ros, or a TFMessage publisher, or nothing)."""

    def __init__(self, node):
        self._node = node
        self._broadcaster = None
        self._publisher = None
        if _tf2_ros is not None:
            self._broadcaster = _tf2_ros.TransformBroadcaster(node)
        elif _tf2_msgs is not None:
            from rclpy.qos import QoSProfile

            self._publisher = node.create_publisher(_tf2_msgs.TFMessage, "/tf", QoSProfile(depth=100))
        self.backend = BACKENDS["tf"]

    @property
    def available(self) -> bool:
        return self._broadcaster is not None or self._publisher is not None

    def send(self, transform) -> bool:
        """Publish one TransformStamped; False when no TF backend exists."""
        if self._broadcaster is not None:
            self._broadcaster.sendTransform(transform)
            return True
        if self._publisher is not None:
            self._publisher.publish(_tf2_msgs.TFMessage(transforms=[transform]))
            return True
        return False

    def destroy(self) -> None:
        publisher = self._publisher if self._publisher is not None else getattr(self._broadcaster, "pub_tf", None)
        if publisher is not None:
            self._node.destroy_publisher(publisher)
        self._broadcaster = self._publisher = None
