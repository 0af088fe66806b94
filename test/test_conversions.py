"""ROS message ↔ numpy conversions of the node, and the compat fallbacks (no DDS)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

pytestmark = pytest.mark.usefixtures("rclpy_available")

K = np.array([[200.0, 0.0, 63.5], [0.0, 190.0, 31.5], [0.0, 0.0, 1.0]])


def _header(sec=5, nanosec=7, frame_id="cam"):
    from std_msgs.msg import Header

    header = Header()
    header.stamp.sec, header.stamp.nanosec, header.frame_id = sec, nanosec, frame_id
    return header


def _image(array, encoding, step=None):
    from sensor_msgs.msg import Image

    msg = Image()
    msg.height, msg.width = array.shape[:2]
    msg.encoding = encoding
    row = array[0].nbytes
    step = step or row
    padded = np.zeros((array.shape[0], step), np.uint8)
    padded[:, :row] = np.ascontiguousarray(array).view(np.uint8).reshape(array.shape[0], row)
    msg.step = step
    msg.data = padded.tobytes()
    return msg


def test_decode_rgb_bgr_and_padded_rows():
    from omeganet_ros.ros.conversions import decode_image

    rgb = np.random.default_rng(0).integers(0, 256, (6, 10, 3), dtype=np.uint8)
    np.testing.assert_array_equal(decode_image(_image(rgb, "rgb8")), rgb)
    np.testing.assert_array_equal(decode_image(_image(np.ascontiguousarray(rgb[..., ::-1]), "bgr8")), rgb)
    np.testing.assert_array_equal(decode_image(_image(rgb, "rgb8", step=40)), rgb)


@pytest.mark.parametrize("mutate, message", [
    (lambda m: setattr(m, "data", bytes(m.data)[:-1]), "step × height"),
    (lambda m: (setattr(m, "width", 0), setattr(m, "height", 0)), "zero size"),
    (lambda m: setattr(m, "encoding", "32FC1"), "32FC1"),
    (lambda m: setattr(m, "encoding", "nv12_like"), "unsupported image encoding"),
    (lambda m: setattr(m, "step", 5), "step"),
])
def test_decode_rejects_bad_images_with_a_clear_error(mutate, message):
    from omeganet_ros.ros.conversions import decode_image

    msg = _image(np.zeros((4, 6, 3), np.uint8), "rgb8")
    mutate(msg)
    with pytest.raises(ValueError, match=message.replace("×", ".")):
        decode_image(msg)


def test_decode_compressed_png_and_garbage():
    from sensor_msgs.msg import CompressedImage

    from omeganet_ros.ros.conversions import decode_compressed

    rgb = np.random.default_rng(1).integers(0, 256, (8, 12, 3), dtype=np.uint8)
    msg = CompressedImage(format="png", data=cv2.imencode(".png", rgb[..., ::-1])[1].tobytes())
    np.testing.assert_array_equal(decode_compressed(msg), rgb)
    with pytest.raises(ValueError, match="decode"):
        decode_compressed(CompressedImage(format="jpeg", data=b"\x00\x01garbage"))


def test_camera_info_validation_and_scaling():
    import torch

    from omeganet_ros.geometry import scale_intrinsics
    from omeganet_ros.ros.conversions import K_to_camera_info, camera_info_to_K

    info = K_to_camera_info(K, 128, 64, _header())
    np.testing.assert_allclose(camera_info_to_K(info), K)
    assert list(info.p) == [200.0, 0.0, 63.5, 0.0, 0.0, 190.0, 31.5, 0.0, 0.0, 0.0, 1.0, 0.0]
    scaled = camera_info_to_K(info, (256, 96))
    expected = scale_intrinsics(torch.from_numpy(K), 2.0, 1.5).numpy()
    np.testing.assert_allclose(scaled, expected)
    for bad, message in ((np.full((3, 3), np.nan), "NaN"), (np.zeros((3, 3)), "positive")):
        with pytest.raises(ValueError, match=message):
            camera_info_to_K(K_to_camera_info(bad, 128, 64, _header()))
    with pytest.raises(ValueError, match="zero image size"):
        camera_info_to_K(K_to_camera_info(K, 0, 0, _header()))
    far = K.copy()
    far[0, 2] = 500
    with pytest.raises(ValueError, match="principal point"):
        camera_info_to_K(K_to_camera_info(far, 128, 64, _header()))


@pytest.mark.parametrize("array, encoding", [
    (np.linspace(0, 5, 24, dtype=np.float32).reshape(4, 6), "32FC1"),
    (np.linspace(-3, 3, 48, dtype=np.float32).reshape(4, 6, 2), "32FC2"),
    (np.arange(24, dtype=np.uint8).reshape(4, 6), "mono8"),
    (np.arange(72, dtype=np.uint8).reshape(4, 6, 3), "rgb8"),
])
def test_output_images_round_trip(array, encoding):
    from omeganet_ros.data.rosbag_io import image_to_numpy
    from omeganet_ros.ros.conversions import image_msg

    msg = image_msg(array, encoding, _header())
    assert msg.encoding == encoding and msg.header.frame_id == "cam" and msg.step == array[0].nbytes
    np.testing.assert_array_equal(image_to_numpy(msg), array)


def test_flow_colour_wheel_follows_middlebury():
    from omeganet_ros.visualize import FLOW_COLOR_WHEEL as COLOR_WHEEL, colorize_flow

    assert len(COLOR_WHEEL) == 55  # RY 15, YG 6, GC 4, CB 11, BM 13, MR 6
    flow = np.array([[[0.0, 0.0], [1.0, 0.0], [0.0, -1.0], [-1.0, 0.0], [0.0, 1.0], [np.nan, 0.0], [0.5, 0.0]]],
                    dtype=np.float32)
    rgb = colorize_flow(flow).astype(int)[0]
    np.testing.assert_array_equal(rgb[0], [255, 255, 255])          # no motion: white
    np.testing.assert_array_equal(rgb[1], [255, 0, 0])             # right: red (start of the RY segment)
    assert rgb[2][2] == 255 and rgb[2][1] == 0 and 60 < rgb[2][0] < 110   # up: blue-violet (BM segment)
    assert rgb[3][0] == 0 and rgb[3][2] == 255 and 190 < rgb[3][1] < 230  # left: cyan-blue (CB segment)
    assert rgb[4][0] == 255 and rgb[4][1] > 200 and rgb[4][2] == 0  # down: yellow (end of RY)
    np.testing.assert_array_equal(rgb[5], [0, 0, 0])                # invalid: black
    np.testing.assert_array_equal(rgb[6], [255, 127, 127])          # half the largest magnitude: half saturated


def test_depth_and_semantic_colouring():
    from omeganet_ros.classes import train_palette
    from omeganet_ros.ros.conversions import colorize_depth, colorize_semantic

    depth = np.array([[1.0, 10.0, np.nan]], np.float32)
    rgb = colorize_depth(depth)
    assert rgb[0, 0].sum() > rgb[0, 1].sum() > 0
    np.testing.assert_array_equal(rgb[0, 2], [0, 0, 0])
    labels = np.array([[0, 13, 255]], np.uint8)
    np.testing.assert_array_equal(colorize_semantic(labels), train_palette()[labels])


def test_points_from_depth_with_colour_and_labels():
    from omeganet_ros.ros.conversions import depth_to_points, point_cloud_msg, point_cloud_to_array

    depth = np.full((4, 6), 2.0, np.float32)
    depth[0, 0] = np.nan
    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 10, 20, 30
    semantic = np.zeros((4, 6), np.uint8)
    semantic[2, 2] = 10  # sky: left out
    semantic[0, 2] = 13
    points = depth_to_points(depth, K, rgb, semantic, stride=2)
    assert len(points) == 4  # 2×3 strided pixels minus NaN and sky
    msg = point_cloud_msg(points, _header())
    assert [f.name for f in msg.fields] == ["x", "y", "z", "rgb", "label"] and msg.point_step == 20
    back = point_cloud_to_array(msg)
    np.testing.assert_array_equal(back, points)
    first = back[0]  # pixel (u=2, v=0)
    assert first["z"] == 2.0 and first["x"] == pytest.approx((2 - 63.5) / 200 * 2)
    assert first["y"] == pytest.approx((0 - 31.5) / 190 * 2) and first["label"] == 13
    packed = np.array([first["rgb"]], np.float32).view(np.uint32)[0]
    assert (packed >> 16 & 255, packed >> 8 & 255, packed & 255) == (10, 20, 30)
    assert len(depth_to_points(depth, K, rgb, semantic, stride=1, max_depth=1.0)) == 0


def test_poses_odometry_and_ego_motion():
    from omeganet_ros.ros.conversions import (ego_motion_msg, odometry_msg, optical_pose_in_odom,
                                              transform_to_matrix)

    forward = np.eye(4)
    forward[2, 3] = 1.0  # 1 m along the optical axis
    yaw = np.eye(4)
    yaw[:3, :3] = cv2.Rodrigues(np.array([0.0, -0.1, 0.0]))[0]  # turning left (rotation about optical −y = up)
    motion = forward @ yaw
    covariance = np.diag([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]) * 1e-4
    ego = ego_motion_msg(_header(), motion, _header(6).stamp, metric=True, covariance=covariance)
    np.testing.assert_allclose(transform_to_matrix(ego.transform), motion, atol=1e-12)
    assert ego.stamp_to.sec == 6 and ego.child_frame_id == "cam" and ego.metric
    np.testing.assert_array_equal(np.reshape(ego.covariance, (6, 6)), covariance)

    pose_odom = optical_pose_in_odom(motion)
    np.testing.assert_allclose(pose_odom[:3, 3], [1.0, 0.0, 0.0], atol=1e-12)  # forward = +x in odom
    pose_covariance = np.eye(6) * 0.5
    odom = odometry_msg(_header(), "odom", "cam", pose_odom, motion, dt=0.1, pose_covariance=pose_covariance,
                        step_covariance=covariance)
    assert odom.header.frame_id == "odom" and odom.child_frame_id == "cam"
    np.testing.assert_array_equal(np.reshape(odom.pose.covariance, (6, 6)), pose_covariance)
    np.testing.assert_allclose(np.reshape(odom.twist.covariance, (6, 6)), covariance / 0.01)  # per step → per s²
    assert odom.pose.pose.position.x == pytest.approx(1.0)
    assert odom.twist.twist.angular.y == pytest.approx(-1.0)  # −0.1 rad / 0.1 s about optical y
    assert np.hypot(odom.twist.twist.linear.x, odom.twist.twist.linear.z) == pytest.approx(10.0)


def test_stamp_cache_finds_the_nearest_within_slop():
    from types import SimpleNamespace

    from omeganet_ros.ros.compat import StampCache

    def msg(ns):
        return SimpleNamespace(header=SimpleNamespace(stamp=SimpleNamespace(sec=ns // 10**9, nanosec=ns % 10**9)), id=ns)

    cache = StampCache(size=3)
    for ns in (1_000, 3_000, 2_000, 9_000):  # out of order; the oldest (1 000) falls out
        cache.add(msg(ns))
    assert len(cache) == 3
    assert cache.nearest(2_100, slop=500).id == 2_000
    assert cache.nearest(2_600, slop=500).id == 3_000
    assert cache.nearest(6_000, slop=500) is None
    assert cache.nearest(1_000, slop=10) is None


def test_decoding_is_the_codec_whatever_is_installed(monkeypatch):
    """One codec path: decode_image never goes through cv_bridge, even where one is importable."""
    import sys
    import types

    from omeganet_ros.ros.conversions import decode_image, image_msg

    broken = types.ModuleType("cv_bridge")  # a cv_bridge whose conversions fail (as with a mismatched OpenCV)

    class CvBridge:
        def __getattr__(self, name):
            raise KeyError(13)

    broken.CvBridge = CvBridge
    monkeypatch.setitem(sys.modules, "cv_bridge", broken)
    rgb = np.random.default_rng(2).integers(0, 256, (6, 10, 3), dtype=np.uint8)
    np.testing.assert_array_equal(decode_image(_image(rgb, "rgb8", step=31)), rgb)  # step not a multiple of 3
    flow = np.linspace(-3, 3, 120, dtype=np.float32).reshape(6, 10, 2)
    assert image_msg(flow, "32FC2", _header()).step == 80


def test_backends_are_reported():
    from omeganet_ros.ros import compat

    assert set(compat.BACKENDS) == {"image_conversion", "camera_info_sync", "point_cloud", "tf"}
    assert "cv_bridge" not in vars(compat)
    try:
        import tf2_ros  # noqa: F401
        has_tf = not compat._FORCE_FALLBACK
    except ImportError:
        has_tf = False
    assert compat.BACKENDS["tf"].startswith("tf2_ros") == has_tf


def _pose(translation, rotvec=(0.0, 0.0, 0.0)):
    pose = np.eye(4)
    pose[:3, :3] = cv2.Rodrigues(np.asarray(rotvec, dtype=np.float64))[0]
    pose[:3, 3] = translation
    return pose


def test_chain_transforms_through_a_tf_tree():
    """The TF fallback's lookup: odom → base_link → camera_link → camera_optical_frame, and a separate tree."""
    from omeganet_ros.ros.compat import chain_transforms

    base_in_odom = _pose([5.0, 1.0, 0.0], [0.0, 0.0, 0.3])
    link_in_base = _pose([1.2, 0.0, 1.5], [0.0, 0.05, 0.0])
    optical_in_link = _pose([0.0, 0.0, 0.0], [-np.pi / 2, 0.0, 0.0]) @ _pose([0, 0, 0], [0.0, 0.0, 0.0])
    edges = {"base_link": ("odom", base_in_odom), "camera_link": ("base_link", link_in_base),
             "camera_optical_frame": ("camera_link", optical_in_link), "other": ("map", np.eye(4))}
    np.testing.assert_allclose(chain_transforms(edges, "base_link", "camera_optical_frame"),
                               link_in_base @ optical_in_link, atol=1e-12)
    np.testing.assert_allclose(chain_transforms(edges, "camera_optical_frame", "odom"),
                               np.linalg.inv(base_in_odom @ link_in_base @ optical_in_link), atol=1e-12)
    np.testing.assert_allclose(chain_transforms(edges, "camera_link", "camera_link"), np.eye(4))
    assert chain_transforms(edges, "base_link", "other") is None
    assert chain_transforms(edges, "base_link", "unknown_frame") is None


def test_camera_motion_in_base_gives_the_base_trajectory():
    """A camera mounted 1.5 m forward and looking forward: the base follows the camera's motion in body axes."""
    from omeganet_ros.ros.conversions import OPTICAL_TO_BODY, camera_motion_in_base

    mount = np.eye(4)
    mount[:3, :3] = OPTICAL_TO_BODY  # optical axes (x right, y down, z forward) in body axes
    mount[:3, 3] = (1.5, 0.0, 1.2)
    # The camera drives 2 m forward while turning 0.2 rad left (about optical −y).
    motion = _pose([0.0, 0.0, 2.0], [0.0, -0.2, 0.0])
    base_motion = camera_motion_in_base(motion, mount)
    np.testing.assert_allclose(cv2.Rodrigues(base_motion[:3, :3])[0].ravel(), [0.0, 0.0, 0.2], atol=1e-12)  # yaw left
    # The base pose is the camera pose shifted back by the mounting: consistent for any motion.
    np.testing.assert_allclose(mount @ motion, base_motion @ mount, atol=1e-12)
    assert base_motion[2, 3] == pytest.approx(0.0, abs=1e-12)  # no vertical motion of the base


def test_motion_covariance_from_the_spread_of_recent_motions():
    from omeganet_ros.motion_covariance import UNKNOWN_VARIANCE, MotionSpread, rotate_covariance

    rng = np.random.default_rng(4)
    spread = MotionSpread(window=50)
    assert np.all(np.diag(spread.step_covariance()) == UNKNOWN_VARIANCE) and not spread.known
    sigma = 0.05
    for _ in range(50):  # constant 1 m/step forward plus noise of σ per axis on the translation
        spread.add(_pose([0.0, 0.0, 1.0] + rng.normal(0, sigma, 3)), np.eye(3))
    variance = np.diag(spread.step_covariance())
    np.testing.assert_allclose(variance[:3], sigma ** 2, rtol=0.5)  # the noise, not the (constant) motion
    assert np.all(variance[3:] < 1e-8)
    pose_variance = np.diag(spread.pose_covariance)[:3]
    assert np.all(pose_variance > 40 * variance[:3] * 0.5)  # grows with the steps (a random walk)
    swapped = rotate_covariance(np.diag([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]), np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1.0]]))
    np.testing.assert_array_equal(np.diag(swapped), [2.0, 1.0, 3.0, 5.0, 4.0, 6.0])
    spread.reset()
    assert not spread.known


def test_camera_info_source_with_the_message_filters_api(tmp_path):
    """The message_filters path of CameraInfoSource, against a stand-in with message_filters' Python API.

    The real library is not installable on the bare machine; this stand-in reproduces its
    Subscriber/Cache interface (ros2/message_filters, src/message_filters/__init__.py) so that the
    adapter's calls (constructor arguments, registerCallback, getElemBeforeTime/AfterTime with
    rclpy Time) are exercised over a real subscription.
    """
    import importlib.util
    import sys
    import types

    import rclpy
    from rclpy.time import Time
    from sensor_msgs.msg import CameraInfo

    from omeganet_ros.ros import compat as real_compat

    class Subscriber:
        def __init__(self, node, msg_type, topic, qos_profile=10, **kwargs):
            self.callbacks = []
            self.sub = node.create_subscription(msg_type, topic, self._signal, qos_profile, **kwargs)

        def registerCallback(self, cb):
            self.callbacks.append(cb)

        def _signal(self, msg):
            for cb in self.callbacks:
                cb(msg)

    class Cache:
        def __init__(self, f, cache_size=1):
            self.msgs, self.times, self.size, self.callbacks = [], [], cache_size, []
            f.registerCallback(self.add)

        def registerCallback(self, cb):
            self.callbacks.append(cb)

        def add(self, msg):
            self.msgs.append(msg)
            self.times.append(Time.from_msg(msg.header.stamp))
            del self.msgs[:-self.size], self.times[:-self.size]
            for cb in self.callbacks:
                cb(msg)

        def getElemAfterTime(self, stamp):
            newer = [m for m, t in zip(self.msgs, self.times) if t >= stamp]
            return newer[0] if newer else None

        def getElemBeforeTime(self, stamp):
            older = [m for m, t in zip(self.msgs, self.times) if t <= stamp]
            return older[-1] if older else None

    fake = types.ModuleType("message_filters")
    fake.Subscriber, fake.Cache = Subscriber, Cache
    saved = sys.modules.get("message_filters")
    sys.modules["message_filters"] = fake
    try:
        spec = importlib.util.spec_from_file_location("omeganet_ros.ros._compat_with_message_filters",
                                                      real_compat.__file__)
        compat = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(compat)
    finally:
        if saved is None:
            sys.modules.pop("message_filters", None)
        else:
            sys.modules["message_filters"] = saved
    assert compat.BACKENDS["camera_info_sync"] == "message_filters.Cache"

    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node("camera_info_source_check", context=context)
        seen = []
        source = compat.CameraInfoSource(node, CameraInfo, "camera_info_mf", 10, seen.append)
        pub = node.create_publisher(CameraInfo, "camera_info_mf", 10)
        executor = rclpy.executors.SingleThreadedExecutor(context=context)
        executor.add_node(node)
        for ns in (1_000_000_000, 1_100_000_000, 1_200_000_000):
            msg = CameraInfo()
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(ns, 1_000_000_000)
            pub.publish(msg)
        deadline = 100
        while len(seen) < 3 and deadline:
            executor.spin_once(timeout_sec=0.1)
            deadline -= 1
        assert len(seen) == 3
        found = source.nearest(1_090_000_000, slop=20_000_000)
        assert found is not None and found.header.stamp.nanosec == 100_000_000
        assert source.nearest(1_140_000_000, slop=20_000_000) is None
        assert source.nearest(1_190_000_000, slop=20_000_000).header.stamp.nanosec == 200_000_000
        source.destroy()
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


def test_quaternions_match_scipy_for_all_branches():
    from scipy.spatial.transform import Rotation

    from omeganet_ros.ros.conversions import matrix_to_quaternion

    rotations = Rotation.random(200, random_state=3).as_matrix().tolist()
    rotations += [np.diag([1.0, -1.0, -1.0]), np.diag([-1.0, 1.0, -1.0]), np.diag([-1.0, -1.0, 1.0]), np.eye(3)]
    for R in rotations:
        expected = Rotation.from_matrix(R).as_quat()
        expected = -expected if expected[3] < 0 else expected
        got = matrix_to_quaternion(np.array(R))
        assert np.allclose(got, expected, atol=1e-9) or (abs(expected[3]) < 1e-12 and np.allclose(got, -expected, atol=1e-9))
