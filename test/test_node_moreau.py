"""omeganet_node with a Moreau et al. checkpoint (``model:=<file>``): depth, ego-motion, odometry and instances
published, checked against the MoreauEngine run here on the same frames; no flow, semantic or motion topics
(the model does not estimate them); ΩNet-only parameters and camera-height scale recovery refused at configure.
"""
from __future__ import annotations

import numpy as np
import pytest

import node_helpers as h

pytestmark = pytest.mark.usefixtures("rclpy_available")

SCALE = 3.0
ABSENT_TOPICS = ("flow", "flow/colored", "semantic", "semantic/colored", "motion/probability", "motion/mask",
                 "camera_info/estimated")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return h.random_moreau_checkpoint(tmp_path_factory.mktemp("moreau") / "moreau_random.pt")


@pytest.fixture(scope="module")
def run(checkpoint):
    from nav_msgs.msg import Odometry
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2

    from omeganet_ros.msg import EgoMotion, SceneUnderstanding

    topics = {"depth/image": Image, "depth/relative": Image, "depth/camera_info": CameraInfo, "instance": Image,
              "instance/colored": Image, "ego_motion": EgoMotion, "odometry": Odometry, "points": PointCloud2,
              "scene": SceneUnderstanding}
    frames = h.synthetic_frames(6)
    stamps = [1_700_000_000_000_000_000 + i * 100_000_000 for i in range(len(frames))]
    params = {"model": str(checkpoint), "output_resolution": "network", "scale_recovery": "fixed",
              "fixed_scale": SCALE, "points_stride": 2}
    with h.NodeProcess(params) as node, h.RosClient() as client:
        pub = client.publisher(Image, "image")
        for topic, msg_type in topics.items():
            client.collect(msg_type, topic)
        client.wait_for_subscriber(pub, node=node)
        assert client.spin_until(lambda: all(client.node.count_publishers("/" + t) > 0 for t in topics), 30, node), \
            node.output()
        client.spin_for(1.0)
        publishers = {t: client.node.count_publishers("/" + t) for t in ABSENT_TOPICS}
        sent = h.publish_waiting_for_scenes(client, pub, node, frames, stamps)
        assert client.spin_until(lambda: all(len(client.received[t]) >= 4 for t in topics), 30, node), \
            {t: len(client.received[t]) for t in topics}
        yield {"received": client.received, "sent": sent, "frames": frames, "output": node.output(),
               "absent_publishers": publishers}


@pytest.fixture(scope="module")
def engine_outputs(run, checkpoint):
    """The Moreau engine called directly on the same frames (same file, size and default precision as the node)."""
    from omeganet_ros.moreau_engine import MoreauEngine

    engine = MoreauEngine(str(checkpoint), device="cpu", size=h.TEST_SIZE, output_resolution="network",
                          precision="auto", num_threads=1)
    outputs = [engine.push(f, 1.7e9 + 0.1 * i) for i, f in enumerate(run["frames"])]
    return [o for o in outputs if o is not None]


def test_model_outputs_only_and_the_absent_ones_said_once(run):
    assert run["absent_publishers"] == {t: 0 for t in ABSENT_TOPICS}
    assert run["output"].count("the model does not estimate flow, semantic, motion, camera_info") == 1, run["output"]
    described = [(m.header.stamp.sec, m.header.stamp.nanosec) for m in run["sent"][1:5]]
    for topic in ("instance", "instance/colored", "depth/image", "ego_motion", "scene"):
        assert [(m.header.stamp.sec, m.header.stamp.nanosec) for m in run["received"][topic]] == described, topic


def test_instances_depth_and_motion_match_the_engine(run, engine_outputs):
    from omeganet_ros.ros import conversions

    received = run["received"]
    assert len(engine_outputs) == 4
    assert any(out.instance.max() > 0 for out in engine_outputs)  # the checkpoint's head does give instances
    for i, out in enumerate(engine_outputs):
        msg = received["instance"][i]
        assert msg.encoding == "mono16" and (msg.width, msg.height) == h.TEST_SIZE and msg.is_bigendian == 0
        ids = h.image_array(msg)
        assert ids.dtype == np.uint16
        assert (ids == out.instance).mean() > 0.999
        np.testing.assert_array_equal(h.image_array(received["instance/colored"][i]), conversions.colorize_instances(ids))
        depth = h.image_array(received["depth/image"][i])  # metres (fixed scale); no sky without semantics
        assert np.isfinite(depth).all()
        np.testing.assert_allclose(depth, out.depth * SCALE, rtol=1e-3)
        ego = conversions.transform_to_matrix(received["ego_motion"][i].transform)
        expected = out.ego_motion.copy()
        expected[:3, 3] *= SCALE
        np.testing.assert_allclose(ego, expected, atol=1e-4)
        info = received["depth/camera_info"][i]
        np.testing.assert_allclose(np.reshape(info.k, (3, 3)), out.intrinsics, rtol=1e-4)  # the default K
        points = conversions.point_cloud_to_array(received["points"][i])
        assert len(points) == (h.TEST_SIZE[0] // 2) * (h.TEST_SIZE[1] // 2)  # no sky left out: none is known
        assert set(np.unique(points["label"])) == {conversions.NO_LABEL}


def test_scene_carries_instances_and_leaves_what_the_model_lacks_empty(run):
    for i, scene in enumerate(run["received"]["scene"]):
        assert bytes(scene.instance.data) == bytes(run["received"]["instance"][i].data)
        assert scene.instance.encoding == "mono16"
        for name in ("flow", "semantic", "motion_probability", "motion_mask"):
            image = getattr(scene, name)
            assert (image.width, image.height, len(image.data)) == (0, 0, 0), name
        assert scene.depth_is_metric and scene.depth_scale == pytest.approx(SCALE)
        assert not scene.intrinsics_estimated  # Moreau estimates none: the default K, no camera_info given


def _configure(checkpoint, **overrides):
    """(state after configure, model status) of an in-process node with ``overrides``."""
    import rclpy
    from rclpy.parameter import Parameter

    from omeganet_ros.ros.node import OmeganetNode

    values = {"model": str(checkpoint), "device": "cpu", "num_threads": 1, "network_width": h.TEST_SIZE[0],
              "network_height": h.TEST_SIZE[1], **overrides}
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = OmeganetNode("omeganet_moreau_configure", context=context,
                            parameter_overrides=[Parameter(k, value=v) for k, v in values.items()])
        node.trigger_configure()
        state, status = node._state_name, node._model_status
        node.destroy_node()
        return state, status
    finally:
        rclpy.shutdown(context=context)


def test_camera_height_scale_recovery_and_omeganet_only_parameters_are_refused(checkpoint):
    state, status = _configure(checkpoint, scale_recovery="camera_height")
    assert state == "unconfigured"
    assert "scale_recovery 'camera_height'" in status and "does not estimate" in status
    state, status = _configure(checkpoint, compile=True)
    assert state == "unconfigured" and "parameter 'compile' = True applies to ΩNet only" in status
    state, status = _configure(checkpoint, motion_threshold=0.3)
    assert state == "unconfigured" and "'motion_threshold'" in status
    state, status = _configure(checkpoint, scale_recovery="fixed")
    assert state == "inactive" and status.startswith("loaded Moreau et al. model")
    state, status = _configure("moreau", network_width=0, network_height=0)  # the packaged reference
    assert state == "inactive" and status.startswith("loaded Moreau et al. model") and "moreau_synth.pt" in status
