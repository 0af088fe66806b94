"""omeganet_node in its own process: every output over DDS, checked against the engine run here on the same frames.

The node is configured from a YAML parameters file (``--params-file``), so the
test also shows that parameters from YAML take effect (network size, output
resolution, fixed metric scale, odometry frame, point stride).
"""
from __future__ import annotations

import numpy as np
import pytest

import node_helpers as h

pytestmark = pytest.mark.usefixtures("rclpy_available")

SCALE = 2.5
STRIDE = 2


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from diagnostic_msgs.msg import DiagnosticArray
    from nav_msgs.msg import Odometry
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2

    from omeganet_ros.msg import EgoMotion, SceneUnderstanding

    params_file = tmp_path_factory.mktemp("params") / "omeganet.yaml"
    params_file.write_text(f"""/**:
  ros__parameters:
    output_resolution: network
    scale_recovery: fixed
    fixed_scale: {SCALE}
    odom_frame: odom_from_yaml
    points_stride: {STRIDE}
    points_max_depth: 0.0
    diagnostics_period: 0.3
""")
    topics = {"depth/image": Image, "depth/relative": Image, "depth/colored": Image, "depth/camera_info": CameraInfo, "flow": Image,
              "flow/colored": Image, "semantic": Image, "semantic/colored": Image, "motion/probability": Image,
              "motion/mask": Image, "ego_motion": EgoMotion, "odometry": Odometry, "camera_info/estimated": CameraInfo,
              "points": PointCloud2, "scene": SceneUnderstanding}
    frames = h.synthetic_frames(6)
    stamps = [1_700_000_000_000_000_000 + i * 100_000_000 for i in range(len(frames))]
    with h.NodeProcess(params_file=params_file) as node, h.RosClient() as client:
        pub = client.publisher(Image, "image")
        for topic, msg_type in topics.items():
            client.collect(msg_type, topic)
        client.collect(DiagnosticArray, "/diagnostics")
        client.wait_for_subscriber(pub, node=node)
        # The node publishes an output only when it sees a subscriber: wait until it has discovered ours.
        assert client.spin_until(lambda: all(client.node.count_publishers("/" + t) > 0 for t in topics), 30, node), \
            node.output()
        client.spin_for(1.0)
        sent = h.publish_waiting_for_scenes(client, pub, node, frames, stamps)
        assert client.spin_until(lambda: all(len(client.received[t]) >= 4 for t in topics), 30, node), \
            {t: len(client.received[t]) for t in topics}
        client.spin_for(0.8)
        diagnostics = client.latest_diagnostics(node.name)
        yield {"received": client.received, "sent": sent, "frames": frames, "diagnostics": diagnostics,
               "output": node.output()}


@pytest.fixture(scope="module")
def engine_outputs(run):
    """The engine called directly on the same frames (random weights, same seed and default precision as the node)."""
    from omeganet_ros.engine import SceneEngine

    from omeganet_ros.pose_proxy import ROTATION_FROM_FLOW_DEFAULT

    engine = SceneEngine(checkpoint="random", device="cpu", size=h.TEST_SIZE, output_resolution="network",
                         precision="auto", num_threads=1, rotation_from_flow=ROTATION_FROM_FLOW_DEFAULT)
    outputs = [engine.push(f, 1.7e9 + 0.1 * i) for i, f in enumerate(run["frames"])]
    return [o for o in outputs if o is not None]


def _by_stamp(messages, header_of=lambda m: m.header):
    return {(header_of(m).stamp.sec, header_of(m).stamp.nanosec): m for m in messages}


def _key(msg):
    return (msg.header.stamp.sec, msg.header.stamp.nanosec)


def test_every_output_published_for_every_described_frame(run):
    described = [_key(m) for m in run["sent"][1:5]]  # paper mode: frames 1..4 have a previous and a next frame
    for topic, messages in run["received"].items():
        if topic == "/diagnostics":
            continue
        stamps = [_key(m) for m in messages]
        assert stamps == described, f"{topic}: stamps {stamps}"
        frame_ids = {m.header.frame_id for m in messages}
        expected = {"odom_from_yaml"} if topic == "odometry" else {"camera_optical_frame"}
        assert frame_ids == expected, topic


@pytest.mark.parametrize("topic, encoding, channels_dtype", [
    ("depth/image", "32FC1", np.float32), ("depth/relative", "32FC1", np.float32), ("flow", "32FC2", np.float32), ("semantic", "mono8", np.uint8),
    ("motion/probability", "32FC1", np.float32), ("motion/mask", "mono8", np.uint8),
    ("depth/colored", "rgb8", np.uint8), ("flow/colored", "rgb8", np.uint8), ("semantic/colored", "rgb8", np.uint8)])
def test_images_have_encoding_and_network_size_from_yaml(run, topic, encoding, channels_dtype):
    for msg in run["received"][topic]:
        assert msg.encoding == encoding
        # output_resolution: network (from the YAML file): 192×64, not the 256×96 input.
        assert (msg.width, msg.height) == h.TEST_SIZE
        assert h.image_array(msg).dtype == channels_dtype


def test_values_match_the_engine_called_directly(run, engine_outputs):
    from omeganet_ros.ros import conversions

    received = run["received"]
    assert len(engine_outputs) == 4
    for i, out in enumerate(engine_outputs):
        depth = h.image_array(received["depth/image"][i])  # metres (fixed scale), sky = +Inf (REP 117)
        sky = out.semantic == conversions.SKY_TRAIN_ID
        np.testing.assert_allclose(depth[~sky], (out.depth * SCALE)[~sky], rtol=1e-3)
        assert np.all(np.isposinf(depth[sky]))
        np.testing.assert_allclose(h.image_array(received["depth/relative"][i]), out.depth, rtol=1e-3)
        np.testing.assert_allclose(h.image_array(received["flow"][i]), out.flow, atol=1e-3)
        semantic = h.image_array(received["semantic"][i])
        assert (semantic == out.semantic).mean() > 0.999
        np.testing.assert_allclose(h.image_array(received["motion/probability"][i]), out.motion_probability, atol=1e-3)
        mask = h.image_array(received["motion/mask"][i])
        assert set(np.unique(mask)) <= {0, 255}
        assert ((mask == 255) == out.motion_mask).mean() > 0.999
        colored = h.image_array(received["semantic/colored"][i])
        np.testing.assert_array_equal(colored, conversions.colorize_semantic(semantic))
        flow_colored = h.image_array(received["flow/colored"][i])
        assert np.abs(flow_colored.astype(int) - conversions.colorize_flow(out.flow)).max() <= 2
        info = received["depth/camera_info"][i]
        assert (info.width, info.height) == h.TEST_SIZE
        np.testing.assert_allclose(np.reshape(info.k, (3, 3)), out.intrinsics, rtol=1e-4)
        np.testing.assert_allclose(np.reshape(received["camera_info/estimated"][i].k, (3, 3)), out.intrinsics, rtol=1e-4)


def test_ego_motion_and_odometry_follow_the_engine_with_scale(run, engine_outputs):
    from omeganet_ros.ros import conversions

    received, sent = run["received"], run["sent"]
    pose = np.eye(4)
    for i, out in enumerate(engine_outputs):
        ego = received["ego_motion"][i]
        assert ego.stamp_from == sent[i + 1].header.stamp and ego.stamp_to == sent[i + 2].header.stamp
        assert ego.metric and ego.child_frame_id == "camera_optical_frame"
        expected = out.ego_motion.copy()
        expected[:3, 3] *= SCALE
        np.testing.assert_allclose(conversions.transform_to_matrix(ego.transform), expected, atol=1e-4)
        step = out.motion_from_previous.copy()
        step[:3, 3] *= SCALE
        pose = pose @ step
        odom = received["odometry"][i]
        assert odom.header.frame_id == "odom_from_yaml" and odom.child_frame_id == "camera_optical_frame"
        expected_odom = conversions.optical_pose_in_odom(pose)
        p = odom.pose.pose
        got = np.eye(4)
        got[:3, :3] = conversions.transform_to_matrix(type("T", (), {"rotation": p.orientation, "translation": p.position})())[:3, :3]
        got[:3, 3] = (p.position.x, p.position.y, p.position.z)
        np.testing.assert_allclose(got, expected_odom, atol=1e-4)
        # Covariances from the spread of the motions so far: unknown (1000) for the first two, then real.
        pose_cov = np.reshape(odom.pose.covariance, (6, 6))
        ego_cov = np.reshape(ego.covariance, (6, 6))
        assert np.all(np.diag(pose_cov) > 0) and np.all(np.diag(ego_cov) > 0)
        if i >= 2:
            assert np.all(np.diag(ego_cov) < 1000.0) and np.all(np.diag(pose_cov) < 1000.0)


def test_point_cloud_back_projects_depth_with_labels(run, engine_outputs):
    from omeganet_ros.ros import conversions

    for i, out in enumerate(engine_outputs):
        cloud = run["received"]["points"][i]
        points = conversions.point_cloud_to_array(cloud)
        depth = out.depth * SCALE
        strided = depth[::STRIDE, ::STRIDE]
        labels = out.semantic[::STRIDE, ::STRIDE]
        keep = np.isfinite(strided) & (labels != conversions.SKY_TRAIN_ID)
        assert len(points) == keep.sum() > 0
        np.testing.assert_allclose(np.sort(points["z"]), np.sort(strided[keep]), rtol=1e-3)
        assert set(np.unique(points["label"])) <= set(range(19))


def test_scene_message_bundles_everything(run, engine_outputs):
    for i, scene in enumerate(run["received"]["scene"]):
        assert scene.header == run["sent"][i + 1].header
        assert scene.depth_is_metric and scene.depth_scale == pytest.approx(SCALE)
        assert scene.depth.encoding == "32FC1" and scene.flow.encoding == "32FC2"
        assert scene.semantic.encoding == "mono8" and scene.motion_mask.encoding == "mono8"
        assert bytes(scene.depth.data) == bytes(run["received"]["depth/image"][i].data)  # metric: depth/image
        assert len(scene.class_names) == 19 and scene.class_names[0] == "road"
        assert scene.intrinsics_estimated
        assert scene.ego_motion.stamp_to == run["sent"][i + 2].header.stamp
        assert scene.engine_ms > 0 and scene.latency_ms >= scene.engine_ms


def test_diagnostics_report_rates_model_and_backends(run):
    diag = run["diagnostics"]
    assert diag is not None, run["output"]
    assert diag["state"] == "active"
    assert diag["frames_received"] == "6" and diag["frames_processed"] == "6" and diag["dropped_busy"] == "0"
    assert "RANDOM WEIGHTS" in diag["model"] and diag["_level"] == 1  # WARN: random weights
    assert diag["device"] == "cpu"
    assert "fixed" in diag["scale_recovery"]
    assert diag["backend_tf"].startswith(("tf2_ros", "fallback", "none"))
