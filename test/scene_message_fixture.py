"""A SceneUnderstanding filled with real 640×192 payloads, built identically in any process."""
from __future__ import annotations

import sys
import time

import numpy as np

WIDTH, HEIGHT = 640, 192
TOPIC = "scene_fixture"


def _image(msg, array: np.ndarray, encoding: str) -> None:
    msg.height, msg.width = array.shape[:2]
    msg.encoding = encoding
    msg.is_bigendian = False
    msg.step = array.strides[0]
    msg.data = array.tobytes()


def build_scene():
    from omeganet_ros.classes import CLASS_NAMES
    from omeganet_ros.msg import SceneUnderstanding

    rng = np.random.default_rng(7)
    msg = SceneUnderstanding()
    msg.header.stamp.sec, msg.header.stamp.nanosec = 1_700_000_123, 456_789_000
    msg.header.frame_id = "camera_optical_frame"
    depth = rng.uniform(1.0, 80.0, (HEIGHT, WIDTH)).astype(np.float32)
    depth[0, :10] = np.nan
    for image, array, encoding in (
        (msg.depth, depth, "32FC1"),
        (msg.flow, rng.normal(0, 5, (HEIGHT, WIDTH, 2)).astype(np.float32), "32FC2"),
        (msg.semantic, rng.integers(0, 19, (HEIGHT, WIDTH), dtype=np.uint8), "mono8"),
        (msg.motion_probability, rng.uniform(0, 1, (HEIGHT, WIDTH)).astype(np.float32), "32FC1"),
        (msg.motion_mask, (rng.uniform(0, 1, (HEIGHT, WIDTH)) > 0.8).astype(np.uint8) * 255, "mono8"),
        (msg.instance, rng.integers(0, 700, (HEIGHT, WIDTH), dtype=np.uint16), "mono16"),  # ids above 255 too
    ):
        image.header = msg.header
        _image(image, array, encoding)
    msg.depth_scale = 23.5
    msg.depth_is_metric = True
    msg.class_names = list(CLASS_NAMES)
    ego = msg.ego_motion
    ego.header = msg.header
    ego.stamp_from = msg.header.stamp
    ego.stamp_to.sec, ego.stamp_to.nanosec = 1_700_000_123, 556_789_000
    ego.child_frame_id = "camera_optical_frame"
    ego.transform.translation.x, ego.transform.translation.y, ego.transform.translation.z = 0.01, -0.02, 0.95
    ego.transform.rotation.x, ego.transform.rotation.y, ego.transform.rotation.z, ego.transform.rotation.w = (
        0.0, 0.0087, 0.0, 0.99996)
    ego.metric = True
    ego.covariance = [0.25 * (i % 7 == 0) for i in range(36)]  # diagonal 0.25
    info = msg.camera_info
    info.header = msg.header
    info.height, info.width = HEIGHT, WIDTH
    info.distortion_model = "plumb_bob"
    info.d = [0.0] * 5
    info.k = [371.0, 0.0, 319.5, 0.0, 371.0, 95.5, 0.0, 0.0, 1.0]
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    info.p = [371.0, 0.0, 319.5, 0.0, 0.0, 371.0, 95.5, 0.0, 0.0, 0.0, 1.0, 0.0]
    msg.intrinsics_estimated = True
    msg.latency_ms = 42.5
    msg.engine_ms = 40.0
    return msg


def publish_forever(seconds: float = 30.0) -> None:
    """Publish the fixture (reliable, transient local) until killed or ``seconds`` pass."""
    import rclpy
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    from omeganet_ros.msg import SceneUnderstanding

    rclpy.init()
    node = rclpy.create_node("scene_fixture_publisher")
    qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    publisher = node.create_publisher(SceneUnderstanding, TOPIC, qos)
    msg = build_scene()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        publisher.publish(msg)
        rclpy.spin_once(node, timeout_sec=0.2)
    node.destroy_node()
    rclpy.shutdown()


if __name__ == "__main__":
    publish_forever(float(sys.argv[1]) if len(sys.argv) > 1 else 30.0)
