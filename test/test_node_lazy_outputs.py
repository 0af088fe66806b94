"""Colourised images and the point cloud are computed only for outputs someone subscribes to (in-process)."""
from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.usefixtures("rclpy_available")

H, W = 32, 48


class _FakePublisher:
    def __init__(self, subscribers: int):
        self.subscribers = subscribers
        self.published = []

    def get_subscription_count(self):
        return self.subscribers

    def publish(self, msg):
        self.published.append(msg)


def _outputs(stamp: float):
    from omeganet_ros.engine import SceneOutputs

    rng = np.random.default_rng(0)
    return SceneOutputs(
        stamp=stamp, depth=rng.uniform(1, 20, (H, W)).astype(np.float32), depth_is_metric=False, depth_scale=1.0,
        semantic=rng.integers(0, 19, (H, W), dtype=np.uint8), flow=rng.normal(0, 2, (H, W, 2)).astype(np.float32),
        motion_probability=rng.uniform(0, 1, (H, W)).astype(np.float32), motion_mask=rng.uniform(0, 1, (H, W)) > 0.5,
        ego_motion=np.eye(4), motion_from_previous=np.eye(4),
        intrinsics=np.array([[40.0, 0, 23.5], [0, 40.0, 15.5], [0, 0, 1]]), timings_ms={"total": 1.0})


def _result(outputs):
    """The pipeline's result for the middle of three frames at 1.0, 1.1, 1.2 s, relative depth."""
    from omeganet_ros.pipeline import FrameMeta, SceneResult
    from std_msgs.msg import Header

    frames = []
    for i, stamp in enumerate((1.0, 1.1, 1.2)):
        header = Header(frame_id="cam")
        header.stamp.sec, header.stamp.nanosec = 1, i * 100_000_000
        frames.append(FrameMeta(stamp, (W, H), False, header, np.zeros((H, W, 3), np.uint8)))
    return SceneResult(outputs=outputs, relative_depth=outputs.depth, frame=frames[1], neighbour=frames[2],
                       previous=frames[0], pose=np.eye(4), trajectory=0, metric=False, scale=1.0,
                       scale_status="relative depth")


@pytest.fixture
def node():
    import rclpy

    from omeganet_ros.ros import parameters
    from omeganet_ros.ros.node import OmeganetNode

    context = rclpy.Context()
    rclpy.init(context=context)
    n = OmeganetNode("omeganet_lazy_check", context=context)
    n._config = parameters.read(n)
    yield n
    n.destroy_node()
    rclpy.shutdown(context=context)


EXPENSIVE = ("colorize_depth", "colorize_flow", "colorize_semantic", "depth_to_points")
TOPICS = ("depth/image", "depth/relative", "depth/colored", "depth/camera_info", "flow", "flow/colored", "semantic", "semantic/colored",
          "motion/probability", "motion/mask", "ego_motion", "odometry", "camera_info/estimated", "points", "scene")


@pytest.mark.parametrize("subscribed", [(), ("depth/colored",), ("flow/colored", "points"), ("semantic/colored",)])
def test_expensive_outputs_only_for_subscribers(node, monkeypatch, subscribed):
    from omeganet_ros.ros import conversions

    calls = {name: 0 for name in EXPENSIVE}
    for name in EXPENSIVE:
        original = getattr(conversions, name)

        def counted(*args, _name=name, _original=original, **kwargs):
            calls[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(conversions, name, counted)
    node._outputs = {topic: _FakePublisher(1 if topic in subscribed else 0) for topic in TOPICS}
    node._publish(_result(_outputs(1.1)), triggered=0.0, engine_ms=1.0)
    expected = {"colorize_depth": "depth/colored" in subscribed, "colorize_flow": "flow/colored" in subscribed,
                "colorize_semantic": "semantic/colored" in subscribed, "depth_to_points": "points" in subscribed}
    assert calls == {name: int(flag) for name, flag in expected.items()}
    for topic in ("depth/colored", "flow/colored", "semantic/colored", "points"):
        assert len(node._outputs[topic].published) == (1 if topic in subscribed else 0), topic
    # Raw images without subscribers are not even converted to messages (no scene subscriber either).
    assert not node._outputs["depth/relative"].published and not node._outputs["scene"].published
    # Cheap outputs that feed TF/odometry consumers are always published.
    assert len(node._outputs["odometry"].published) == 1 and len(node._outputs["ego_motion"].published) == 1


def test_disabled_outputs_stay_empty_in_scene_and_relative_depth_is_not_depth_image(node):
    """publish_flow: false leaves scene.flow empty; without metric scale only depth/relative carries depth."""
    node._config["publish_flow"] = False
    node._outputs = {topic: _FakePublisher(1) for topic in TOPICS if not topic.startswith("flow")}
    node._publish(_result(_outputs(1.1)), triggered=0.0, engine_ms=1.0)
    scene = node._outputs["scene"].published[0]
    assert (scene.flow.width, scene.flow.height, len(scene.flow.data)) == (0, 0, 0)
    assert scene.semantic.width == W and scene.motion_mask.width == W
    assert not scene.depth_is_metric and scene.depth.width == W
    assert bytes(scene.depth.data) == bytes(node._outputs["depth/relative"].published[0].data)
    assert not node._outputs["depth/image"].published  # REP 118: metres only
    assert len(node._outputs["depth/camera_info"].published) == 1


@pytest.mark.parametrize("subscribed, flow", [(("depth/colored", "odometry", "semantic"), False), (("flow/colored",), True),
                                              (("motion/mask",), True), (("scene",), True)])
def test_ofnet_runs_only_for_flow_motion_or_scene_subscribers(node, subscribed, flow):
    node._config["rotation_from_flow"] = False  # on by default: then the ego-motion alone needs OFNet
    node._outputs = {topic: _FakePublisher(1 if topic in subscribed else 0) for topic in TOPICS}
    assert node._flow_wanted() is flow
    # an output computed without OFNet (flow and motion None) publishes what it has, even if a flow subscriber
    # appeared meanwhile
    skipped = _outputs(1.1)
    skipped.flow = skipped.motion_probability = skipped.motion_mask = None
    node._publish(_result(skipped), triggered=0.0, engine_ms=1.0)
    assert not node._outputs["flow/colored"].published and not node._outputs["motion/mask"].published
    assert len(node._outputs["odometry"].published) == 1


def test_rotation_from_flow_runs_ofnet_for_the_ego_motion_alone(node):
    node._outputs = {topic: _FakePublisher(1 if topic == "odometry" else 0) for topic in TOPICS}
    assert node._config["rotation_from_flow"] is True  # the default: the ego-motion's rotation is fitted to the flow
    assert node._flow_wanted() is True
    node._config["rotation_from_flow"] = False
    assert node._flow_wanted() is False
    node._config["rotation_from_flow"] = True
    node._absent = ("flow", "semantic", "motion")  # a model without OFNet (Moreau et al.): nothing to fit
    assert node._flow_wanted() is False


MOREAU_TOPICS = ("depth/image", "depth/relative", "depth/colored", "depth/camera_info", "instance", "instance/colored",
                 "ego_motion", "odometry", "points", "scene")


@pytest.mark.parametrize("subscribed, wanted", [(("depth/colored", "points"), False), (("instance",), True),
                                                (("instance/colored",), True), (("scene",), True)])
def test_instance_clustering_runs_only_for_instance_or_scene_subscribers(node, subscribed, wanted):
    node._outputs = {topic: _FakePublisher(1 if topic in subscribed else 0) for topic in MOREAU_TOPICS}
    assert node._instances_wanted() is wanted
    node._config["publish_instance"] = False
    assert node._instances_wanted() is False


def test_a_model_without_flow_and_semantics_publishes_instances_and_no_colourised_semantics(node, monkeypatch):
    from omeganet_ros.ros import conversions

    calls = []
    monkeypatch.setattr(conversions, "colorize_semantic", lambda *a: calls.append("semantic"))
    out = _outputs(1.1)
    out.semantic = out.flow = out.motion_probability = out.motion_mask = None
    out.instance = np.zeros((H, W), np.uint16)
    out.instance[4:12, 5:20], out.instance[20:30, 30:40] = 1, 300
    node._outputs = {topic: _FakePublisher(1) for topic in MOREAU_TOPICS + ("semantic/colored",)}
    node._publish(_result(out), triggered=0.0, engine_ms=1.0)
    ids = node._outputs["instance"].published[0]
    assert ids.encoding == "mono16" and ids.step == 2 * W
    np.testing.assert_array_equal(np.frombuffer(bytes(ids.data), "<u2").reshape(H, W), out.instance)
    colored = np.frombuffer(bytes(node._outputs["instance/colored"].published[0].data), np.uint8).reshape(H, W, 3)
    np.testing.assert_array_equal(colored, conversions.colorize_instances(out.instance))
    assert not calls and not node._outputs["semantic/colored"].published
    scene = node._outputs["scene"].published[0]
    assert bytes(scene.instance.data) == bytes(ids.data) and scene.semantic.width == 0 and scene.flow.width == 0
    points = conversions.point_cloud_to_array(node._outputs["points"].published[0])
    assert set(np.unique(points["label"])) == {conversions.NO_LABEL}
