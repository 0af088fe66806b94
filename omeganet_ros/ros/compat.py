"""The one place that chooses between the real-ROS helper libraries and omeganet_ros's small fallbacks.

A ROS 2 install (Jazzy, Kilted) has ``message_filters`` and ``tf2_ros``; the
node uses them there. The bare-machine set-up (ROS 2 from PyPI wheels) cannot
install them, so each has a fallback here with the same behaviour for what the
node needs:

===============  ============================================  ==========================================
library          used for                                      fallback
===============  ============================================  ==========================================
message_filters  camera_info cache, lookup by nearest stamp    :class:`StampCache` on a plain subscription
tf2_ros          publishing odom → base/camera on /tf;          ``tf2_msgs/TFMessage`` on /tf, and /tf +
                 looking up base_frame → camera                 /tf_static subscriptions chained by
                                                               :func:`chain_transforms`, if tf2_msgs is
                                                               importable; else none (on /diagnostics)
===============  ============================================  ==========================================

Images are always converted by one codec, :mod:`omeganet_ros.data.rosbag_io`,
never by ``cv_bridge``: its results must not depend on what is installed
(cv_bridge mis-decodes rows padded to a step that is not a multiple of the
pixel size, and raises KeyError when the Python OpenCV is not the major
version it was built against). Point clouds are always written with numpy:
``sensor_msgs_py.create_cloud`` differs between distributions (some versions
cast every field to the first field's type) and this cloud mixes float32 and
uint32 fields.

:data:`BACKENDS` says which one is in use (shown on /diagnostics). Setting the
environment variable ``OMEGANET_ROS_FORCE_FALLBACK=1`` before import selects
the fallbacks even where the libraries exist (for comparing both paths); it
does not hide message packages (tf2_msgs), which the fallbacks use.
"""
from __future__ import annotations

import bisect
import os
import sys
import threading
from typing import Any, Callable

import numpy as np

_FORCE_FALLBACK = os.environ.get("OMEGANET_ROS_FORCE_FALLBACK", "") not in ("", "0")


def _optional_import(name: str, library: bool = True):
    if library and _FORCE_FALLBACK:
        return None
    try:
        return __import__(name, fromlist=["_"])
    except Exception:  # ImportError, or a broken install
        return None


_message_filters = _optional_import("message_filters")
_tf2_ros = _optional_import("tf2_ros")
_tf2_msgs = _optional_import("tf2_msgs.msg", library=False)

BACKENDS: dict[str, str] = {
    "image_conversion": "omeganet_ros.data.rosbag_io (the one codec, with or without cv_bridge)",
    "camera_info_sync": "message_filters.Cache" if _message_filters is not None else "fallback (StampCache)",
    "point_cloud": "numpy (same layout with or without sensor_msgs_py)",
    "tf": ("tf2_ros" if _tf2_ros is not None else
           "fallback (tf2_msgs/TFMessage on /tf and /tf_static)" if _tf2_msgs is not None else
           "none: neither tf2_ros nor tf2_msgs is importable, TF neither published nor read"),
}


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

TF_AVAILABLE = _tf2_ros is not None or _tf2_msgs is not None


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


def chain_transforms(edges: dict[str, tuple[str, np.ndarray]], target: str, source: str,
                     max_depth: int = 64) -> np.ndarray | None:
    """Pose of frame ``source`` in frame ``target`` (4×4) through a TF tree, or None when not connected.

    ``edges``: child frame → (parent frame, 4×4 pose of the child in the parent), as
    TransformStamped messages on /tf and /tf_static give them.
    """
    def to_root(frame: str) -> dict[str, np.ndarray]:
        poses, pose = {frame: np.eye(4)}, np.eye(4)  # ancestor → pose of ``frame`` in it
        for _ in range(max_depth):
            if frame not in edges:
                break
            frame, parent_pose = edges[frame]
            pose = parent_pose @ pose
            poses[frame] = pose
        return poses

    from_source, from_target = to_root(source), to_root(target)
    common = next((f for f in from_source if f in from_target), None)
    if common is None:
        return None
    return np.linalg.inv(from_target[common]) @ from_source[common]


class TransformLookup:
    """Looks up the pose of one frame in another from TF.

    tf2_ros: a ``Buffer`` fed by a ``TransformListener`` on the node. Fallback
    (tf2_msgs only): /tf_static (transient local) and /tf subscriptions keeping
    the newest transform of each child frame, chained by :func:`chain_transforms`
    (no interpolation in time: meant for the static mounting of a camera).
    """

    def __init__(self, node, callback_group=None):
        self._node = node
        self._subscriptions = []
        self._buffer = self._listener = None
        self._edges: dict[str, tuple[str, np.ndarray]] = {}
        self._lock = threading.Lock()
        if _tf2_ros is not None:
            self._buffer = _tf2_ros.Buffer()
            self._listener = _tf2_ros.TransformListener(self._buffer, node, spin_thread=False)
        elif _tf2_msgs is not None:
            from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

            static = QoSProfile(depth=100, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                                reliability=ReliabilityPolicy.RELIABLE)
            self._subscriptions = [
                node.create_subscription(_tf2_msgs.TFMessage, "/tf_static", self._add, static,
                                         callback_group=callback_group),
                node.create_subscription(_tf2_msgs.TFMessage, "/tf", self._add, QoSProfile(depth=100),
                                         callback_group=callback_group)]
        else:
            raise RuntimeError("cannot read TF: neither tf2_ros nor tf2_msgs is importable")

    def _add(self, msg) -> None:
        from .conversions import transform_to_matrix

        with self._lock:
            for t in msg.transforms:
                self._edges[t.child_frame_id.lstrip("/")] = (t.header.frame_id.lstrip("/"),
                                                             transform_to_matrix(t.transform))

    def lookup(self, target: str, source: str) -> np.ndarray | None:
        """Newest pose (4×4) of frame ``source`` in frame ``target``; None while TF does not connect them."""
        if self._buffer is not None:
            from rclpy.time import Time

            from .conversions import transform_to_matrix

            try:
                return transform_to_matrix(self._buffer.lookup_transform(target, source, Time()).transform)
            except Exception:  # tf2 LookupException / ConnectivityException / ExtrapolationException
                return None
        with self._lock:
            return chain_transforms(self._edges, target.lstrip("/"), source.lstrip("/"))

    def destroy(self) -> None:
        if self._listener is not None:
            unregister = getattr(self._listener, "unregister", None)
            if unregister is not None:
                unregister()
            else:
                for sub in (self._listener.tf_sub, self._listener.tf_static_sub):
                    self._node.destroy_subscription(sub)
        for sub in self._subscriptions:
            self._node.destroy_subscription(sub)
        self._subscriptions, self._buffer, self._listener = [], None, None
