"""ROS 2 messages ↔ numpy for the node: input checks, output images, camera info, poses, point clouds.

Everything here is a pure function of its arguments (no node state), so it is
unit-tested without DDS. Frames: REP 103 optical frame for the camera (x right,
y down, z forward); the odometry frame follows REP 103/105 body axes (x
forward, y left, z up), see :data:`OPTICAL_TO_BODY`.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from ..classes import CLASS_NAMES
from ..data import rosbag_io
from ..instances import colorize_instances  # noqa: F401  (the node's instance/colored output)
from ..visualize import colorize_depth, colorize_flow, colorize_semantic  # noqa: F401  (the node's */colored outputs)
from . import compat

# Rotation taking optical-frame coordinates (x right, y down, z forward) to body
# coordinates (x forward, y left, z up): body = OPTICAL_TO_BODY @ optical.
OPTICAL_TO_BODY = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
SKY_TRAIN_ID = 10


# ------------------------------------------------------------------------------------------- input

def stamp_seconds(stamp) -> float:
    """builtin_interfaces/Time → float seconds."""
    return int(stamp.sec) + int(stamp.nanosec) * 1e-9


def decode_image(msg) -> np.ndarray:
    """sensor_msgs/Image → H×W×3 uint8 RGB.

    Raises ``ValueError`` naming the problem for zero sizes, an unknown or
    non-colour encoding (32FC1, …), a step shorter than a row, or
    ``len(data) != step × height``. Always the one codec of
    :mod:`omeganet_ros.data.rosbag_io` (see :mod:`.compat` for why not cv_bridge).
    """
    return rosbag_io.image_to_rgb8(msg)


def decode_compressed(msg, max_pixels: int | None = rosbag_io.MAX_INPUT_PIXELS) -> np.ndarray:
    """sensor_msgs/CompressedImage → H×W×3 uint8 RGB; ``ValueError`` when it does not decode or its header
    announces more than ``max_pixels`` (None: no check, e.g. when the caller checked the header already)."""
    return rosbag_io.compressed_to_rgb8(msg.format, msg.data, max_pixels=max_pixels)


def camera_info_to_K(msg, image_size: tuple[int, int] | None = None) -> np.ndarray:
    """sensor_msgs/CameraInfo → 3×3 K in pixels of an image of ``image_size`` (W, H).

    Raises ``ValueError`` for NaN/infinite entries, fx or fy ≤ 0, zero image
    size, or a principal point outside the image. When the camera_info was
    made for another resolution than the image, K is scaled to the image
    (pixel-centre convention of :func:`omeganet_ros.geometry.scale_intrinsics`).
    """
    K = np.asarray(msg.k, dtype=np.float64).reshape(3, 3)
    width, height = int(msg.width), int(msg.height)
    if not np.isfinite(K).all():
        raise ValueError(f"camera_info K has NaN or infinite entries: {K.ravel().tolist()}")
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ValueError(f"camera_info K has fx = {K[0, 0]}, fy = {K[1, 1]}; both must be positive")
    if width <= 0 or height <= 0:
        raise ValueError(f"camera_info has zero image size {width}×{height}")
    if not (0 <= K[0, 2] <= width and 0 <= K[1, 2] <= height):
        raise ValueError(f"camera_info principal point ({K[0, 2]}, {K[1, 2]}) lies outside the {width}×{height} image")
    if image_size is not None and tuple(image_size) != (width, height):
        sx, sy = image_size[0] / width, image_size[1] / height
        K = K.copy()
        K[0, 0] *= sx
        K[1, 1] *= sy
        K[0, 1] *= sx
        K[0, 2] = (K[0, 2] + 0.5) * sx - 0.5
        K[1, 2] = (K[1, 2] + 0.5) * sy - 0.5
    return K


# ------------------------------------------------------------------------------------------ output

def K_to_camera_info(K: np.ndarray, width: int, height: int, header):
    """3×3 K (pixels) → sensor_msgs/CameraInfo of a distortion-free (rectified) ``width``×``height`` image."""
    from sensor_msgs.msg import CameraInfo

    K = np.asarray(K, dtype=np.float64)
    msg = CameraInfo()
    msg.header = header
    msg.width, msg.height = int(width), int(height)
    msg.distortion_model = "plumb_bob"
    msg.d = [0.0] * 5
    msg.k = [float(v) for v in K.ravel()]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [float(K[0, 0]), float(K[0, 1]), float(K[0, 2]), 0.0,
             float(K[1, 0]), float(K[1, 1]), float(K[1, 2]), 0.0, 0.0, 0.0, 1.0, 0.0]
    return msg


def image_msg(array: np.ndarray, encoding: str, header):
    """H×W or H×W×C array → sensor_msgs/Image with ``header`` (32FC1, 32FC2, mono8, rgb8, …; rows unpadded)."""
    from sensor_msgs.msg import Image

    fields = rosbag_io.numpy_to_image_fields(array, encoding)
    msg = Image()
    msg.header = header
    msg.height, msg.width = fields["height"], fields["width"]
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = fields["step"]
    msg.data = fields["data"].tobytes()
    return msg


def depth_with_no_return(depth: np.ndarray, semantic: np.ndarray | None) -> np.ndarray:
    """Metric depth for ``depth/image``: sky pixels (no return, REP 117) set to +Inf; NaN stays invalid.
    ``semantic`` None (a model without semantics, e.g. Moreau et al.): no pixel is known to be sky, depth as is."""
    if semantic is None:
        return np.asarray(depth, dtype=np.float32)
    return np.where(np.asarray(semantic) == SKY_TRAIN_ID, np.float32(np.inf), depth).astype(np.float32, copy=False)


def empty_image(header):
    """An Image with no pixels (a disabled output in SceneUnderstanding)."""
    from sensor_msgs.msg import Image

    msg = Image()
    msg.header = header
    return msg


def mask_to_mono8(mask: np.ndarray) -> np.ndarray:
    """Boolean H×W → uint8 0/255."""
    return np.asarray(mask, dtype=bool).astype(np.uint8) * 255


# ------------------------------------------------------------------------------------------- poses

def matrix_to_quaternion(rotation: np.ndarray) -> np.ndarray:
    """3×3 rotation → unit quaternion (x, y, z, w), w ≥ 0 (Shepperd's method; no scipy on the hot path)."""
    R = np.asarray(rotation, dtype=np.float64)
    trace = R[0, 0] + R[1, 1] + R[2, 2]
    if trace > 0:
        s = 2.0 * math.sqrt(trace + 1.0)
        q = np.array([(R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s, 0.25 * s])
    elif R[0, 0] > R[1, 1] and R[0, 0] > R[2, 2]:
        s = 2.0 * math.sqrt(1.0 + R[0, 0] - R[1, 1] - R[2, 2])
        q = np.array([0.25 * s, (R[0, 1] + R[1, 0]) / s, (R[0, 2] + R[2, 0]) / s, (R[2, 1] - R[1, 2]) / s])
    elif R[1, 1] > R[2, 2]:
        s = 2.0 * math.sqrt(1.0 + R[1, 1] - R[0, 0] - R[2, 2])
        q = np.array([(R[0, 1] + R[1, 0]) / s, 0.25 * s, (R[1, 2] + R[2, 1]) / s, (R[0, 2] - R[2, 0]) / s])
    else:
        s = 2.0 * math.sqrt(1.0 + R[2, 2] - R[0, 0] - R[1, 1])
        q = np.array([(R[0, 2] + R[2, 0]) / s, (R[1, 2] + R[2, 1]) / s, 0.25 * s, (R[1, 0] - R[0, 1]) / s])
    q /= np.linalg.norm(q)
    return -q if q[3] < 0 else q


def fill_transform(transform, matrix: np.ndarray) -> None:
    """Fill a geometry_msgs/Transform from a 4×4 rigid matrix."""
    matrix = np.asarray(matrix, dtype=np.float64)
    transform.translation.x, transform.translation.y, transform.translation.z = (float(v) for v in matrix[:3, 3])
    q = matrix_to_quaternion(matrix[:3, :3])
    transform.rotation.x, transform.rotation.y, transform.rotation.z, transform.rotation.w = (float(v) for v in q)


def transform_to_matrix(transform) -> np.ndarray:
    """geometry_msgs/Transform → 4×4 matrix."""
    matrix = np.eye(4)
    r = transform.rotation
    matrix[:3, :3] = rosbag_io.quaternion_to_rotation((r.x, r.y, r.z, r.w))
    matrix[:3, 3] = (transform.translation.x, transform.translation.y, transform.translation.z)
    return matrix


def optical_pose_in_odom(pose_optical: np.ndarray) -> np.ndarray:
    """Camera pose chained in the first camera's optical frame → pose of the optical frame in ``odom``.

    ``odom`` has its origin at the first camera pose and REP 103 body axes
    (x forward, y left, z up, for a level camera), as REP 105 expects of an
    odometry frame; the child frame stays the camera's optical frame.
    """
    to_body = np.eye(4)
    to_body[:3, :3] = OPTICAL_TO_BODY
    return to_body @ np.asarray(pose_optical, dtype=np.float64)


def camera_motion_in_base(motion_optical: np.ndarray, camera_in_base: np.ndarray) -> np.ndarray:
    """A camera motion (4×4, optical frame) → the same rigid motion of the base it is mounted on (base frame).

    ``camera_in_base``: pose of the camera optical frame in the base frame (the static
    ``base_frame → camera`` transform from TF). Applied to the chained camera pose it gives
    the pose of the base in ``odom`` when ``odom`` is the first base pose (REP 105).
    """
    camera_in_base = np.asarray(camera_in_base, dtype=np.float64)
    return camera_in_base @ np.asarray(motion_optical, dtype=np.float64) @ np.linalg.inv(camera_in_base)


def ego_motion_msg(header, motion: np.ndarray, stamp_to, metric: bool, covariance: np.ndarray):
    """omeganet_ros/EgoMotion: ``motion`` (4×4) = pose of the camera at ``stamp_to`` in the camera at ``header.stamp``;
    ``covariance`` 6×6 (x, y, z, rot_x, rot_y, rot_z) in the camera frame (see :mod:`omeganet_ros.motion_covariance`)."""
    from omeganet_ros.msg import EgoMotion

    msg = EgoMotion()
    msg.header = header
    msg.stamp_from = header.stamp
    msg.stamp_to = stamp_to
    msg.child_frame_id = header.frame_id
    fill_transform(msg.transform, motion)
    msg.metric = bool(metric)
    msg.covariance = [float(v) for v in np.asarray(covariance, dtype=np.float64).ravel()]
    return msg


def odometry_msg(header, odom_frame: str, child_frame: str, pose_in_odom: np.ndarray,
                 motion_from_previous: np.ndarray | None, dt: float | None,
                 pose_covariance: np.ndarray, step_covariance: np.ndarray):
    """nav_msgs/Odometry of ``child_frame`` in ``odom_frame`` (pose) with its velocity in the child frame.

    The twist is the motion from the previous processed frame (expressed in the
    child frame) divided by ``dt`` (seconds); zero when unknown.
    ``pose_covariance`` (6×6, odom frame) and ``step_covariance`` (6×6, child
    frame, one step) come from :class:`omeganet_ros.motion_covariance.MotionSpread`;
    the twist covariance is the step covariance / dt².
    """
    from nav_msgs.msg import Odometry

    msg = Odometry()
    msg.header.stamp = header.stamp
    msg.header.frame_id = odom_frame
    msg.child_frame_id = child_frame
    p = msg.pose.pose
    pose_in_odom = np.asarray(pose_in_odom, dtype=np.float64)
    p.position.x, p.position.y, p.position.z = (float(v) for v in pose_in_odom[:3, 3])
    q = matrix_to_quaternion(pose_in_odom[:3, :3])
    p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w = (float(v) for v in q)
    if motion_from_previous is not None and dt and dt > 0:
        # Motion previous→this expressed in the previous camera frame; as a velocity of the
        # child frame it is expressed in this frame: rotate by Rᵀ.
        R = np.asarray(motion_from_previous[:3, :3], dtype=np.float64)
        linear = R.T @ motion_from_previous[:3, 3] / dt
        angular = cv2.Rodrigues(R)[0].ravel() / dt
        t = msg.twist.twist
        t.linear.x, t.linear.y, t.linear.z = (float(v) for v in linear)
        t.angular.x, t.angular.y, t.angular.z = (float(v) for v in angular)
    msg.pose.covariance = [float(v) for v in np.asarray(pose_covariance, dtype=np.float64).ravel()]
    twist_covariance = np.asarray(step_covariance, dtype=np.float64) / (dt * dt if dt and dt > 0 else 1.0)
    msg.twist.covariance = [float(v) for v in twist_covariance.ravel()]
    return msg


def transform_stamped(header_stamp, parent: str, child: str, matrix: np.ndarray):
    """geometry_msgs/TransformStamped parent → child from a 4×4 matrix (pose of child in parent)."""
    from geometry_msgs.msg import TransformStamped

    msg = TransformStamped()
    msg.header.stamp = header_stamp
    msg.header.frame_id = parent
    msg.child_frame_id = child
    fill_transform(msg.transform, matrix)
    return msg


# ------------------------------------------------------------------------------------ point clouds

POINT_DTYPE = np.dtype({"names": ["x", "y", "z", "rgb", "label"],
                        "formats": ["<f4", "<f4", "<f4", "<f4", "<u4"],
                        "offsets": [0, 4, 8, 12, 16], "itemsize": 20})


def point_fields():
    """PointField list of :data:`POINT_DTYPE`: x, y, z (FLOAT32, metres or relative), rgb (packed FLOAT32), label (UINT32 trainId)."""
    from sensor_msgs.msg import PointField

    return [PointField(name="x", offset=0, datatype=PointField.FLOAT32, count=1),
            PointField(name="y", offset=4, datatype=PointField.FLOAT32, count=1),
            PointField(name="z", offset=8, datatype=PointField.FLOAT32, count=1),
            PointField(name="rgb", offset=12, datatype=PointField.FLOAT32, count=1),
            PointField(name="label", offset=16, datatype=PointField.UINT32, count=1)]


NO_LABEL = 255  # the points' label where no semantics exist (the Moreau model), as trainId 255 = none elsewhere


def depth_to_points(depth: np.ndarray, K: np.ndarray, rgb: np.ndarray, semantic: np.ndarray | None, *,
                    stride: int = 4, max_depth: float = math.inf, skip_sky: bool = True) -> np.ndarray:
    """Back-project every ``stride``-th pixel (rows and columns) → N structured points (:data:`POINT_DTYPE`).

    ``depth`` H×W (along z), ``K`` 3×3 at that resolution, ``rgb`` H×W×3
    uint8, ``semantic`` H×W trainIds (None: a model without semantics; every label :data:`NO_LABEL`, no sky
    known). Points with invalid depth, depth beyond ``max_depth`` or labelled sky are left out. Coordinates in the camera
    optical frame; rgb packed as 0x00RRGGBB in a float32 (rviz convention).
    """
    if stride < 1:
        raise ValueError(f"point cloud stride must be ≥ 1, got {stride}")
    depth = np.asarray(depth)
    if semantic is None:
        semantic = np.full(depth.shape, NO_LABEL, np.uint8)
    if rgb.shape[:2] != depth.shape or semantic.shape != depth.shape:
        raise ValueError(f"depth {depth.shape}, rgb {rgb.shape} and semantic {semantic.shape} must share H×W")
    d = depth[::stride, ::stride].astype(np.float32)
    colours = rgb[::stride, ::stride].astype(np.uint32)
    labels = semantic[::stride, ::stride]
    v, u = np.mgrid[0:depth.shape[0]:stride, 0:depth.shape[1]:stride]
    keep = np.isfinite(d) & (d > 0) & (d <= max_depth)
    if skip_sky:
        keep &= labels != SKY_TRAIN_ID
    z = d[keep]
    points = np.empty(z.size, POINT_DTYPE)
    points["x"] = (u[keep] - K[0, 2]) / K[0, 0] * z
    points["y"] = (v[keep] - K[1, 2]) / K[1, 1] * z
    points["z"] = z
    c = colours[keep]
    points["rgb"] = ((c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2]).astype(np.uint32).view(np.float32)
    points["label"] = labels[keep]
    return points


def point_cloud_msg(points: np.ndarray, header):
    """N structured points (:data:`POINT_DTYPE`) → sensor_msgs/PointCloud2 with ``header``."""
    return compat.create_cloud(header, point_fields(), points)


def point_cloud_to_array(msg) -> np.ndarray:
    """sensor_msgs/PointCloud2 with :func:`point_fields` → N structured array (for consumers and tests)."""
    names = [f.name for f in msg.fields]
    if names != list(POINT_DTYPE.names) or msg.point_step != POINT_DTYPE.itemsize:
        raise ValueError(f"point cloud fields {names} (step {msg.point_step}) are not omeganet_ros's layout")
    return np.frombuffer(bytes(msg.data), POINT_DTYPE, count=msg.width * msg.height)


def class_names() -> list[str]:
    return list(CLASS_NAMES)
