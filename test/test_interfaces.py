"""The generated interfaces import and survive a DDS round trip between two processes."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import scene_message_fixture as fixture

pytestmark = pytest.mark.usefixtures("rclpy_available")


def test_messages_import_with_documented_fields():
    from omeganet_ros.msg import EgoMotion, SceneUnderstanding

    scene = SceneUnderstanding()
    for field in ("header", "depth", "depth_scale", "depth_is_metric", "flow", "semantic", "class_names",
                  "motion_probability", "motion_mask", "instance", "ego_motion", "camera_info", "intrinsics_estimated",
                  "latency_ms", "engine_ms"):
        assert hasattr(scene, field), field
    assert isinstance(scene.ego_motion, EgoMotion)
    ego = EgoMotion()
    for field in ("header", "stamp_from", "stamp_to", "child_frame_id", "transform", "metric", "covariance"):
        assert hasattr(ego, field), field


def test_scene_round_trip_between_processes(tmp_path):
    import rclpy
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    from omeganet_ros.msg import SceneUnderstanding

    publisher = subprocess.Popen(
        [sys.executable, str(Path(fixture.__file__)), "60"],
        env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    received = []
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node("scene_fixture_subscriber", context=context)
        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        node.create_subscription(SceneUnderstanding, fixture.TOPIC, received.append, qos)
        executor = rclpy.executors.SingleThreadedExecutor(context=context)
        executor.add_node(node)
        deadline = time.monotonic() + 45
        while not received and time.monotonic() < deadline and publisher.poll() is None:
            executor.spin_once(timeout_sec=0.2)
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
        publisher.kill()
        output = publisher.communicate()[0].decode(errors="replace")
    assert received, f"no SceneUnderstanding received over DDS; publisher output:\n{output}"

    got, expected = received[0], fixture.build_scene()
    assert got.header == expected.header
    for name in ("depth", "flow", "semantic", "motion_probability", "motion_mask", "instance"):
        a, b = getattr(got, name), getattr(expected, name)
        assert (a.height, a.width, a.encoding, a.step) == (b.height, b.width, b.encoding, b.step), name
        assert bytes(a.data) == bytes(b.data), name
    assert got.depth.height == 192 and got.depth.width == 640
    depth = np.frombuffer(bytes(got.depth.data), np.float32).reshape(192, 640)
    assert np.isnan(depth[0, :10]).all() and np.isfinite(depth[1:]).all()
    instance = np.frombuffer(bytes(got.instance.data), "<u2").reshape(192, 640)
    assert got.instance.encoding == "mono16" and instance.max() > 255
    assert got.depth_scale == pytest.approx(23.5) and got.depth_is_metric
    assert list(got.class_names) == list(expected.class_names) and len(got.class_names) == 19
    assert got.ego_motion == expected.ego_motion
    assert got.camera_info == expected.camera_info
    assert got.intrinsics_estimated and got.latency_ms == pytest.approx(42.5) and got.engine_ms == pytest.approx(40.0)
