"""omeganet-replay through the real node over DDS (loopback): output bag, counts, sim time, reports, errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import replay_helpers as helpers
from omeganet_ros.data import rosbag_io
from omeganet_ros.evaluate.runner import evaluate_paths

pytestmark = pytest.mark.usefixtures("rclpy_available")

FRAMES = 10
NODE_PARAMS = ["-p", "model:=random", "-p", f"network_width:={helpers.WIDTH}", "-p", f"network_height:={helpers.HEIGHT}",
               "-p", "num_threads:=1", "-p", "backend:=torch"]
NAMESPACE = "/replay_test"
# Every output of the node with one message per answered frame (issue 7's topic list), in the node's namespace.
PER_FRAME_TOPICS = tuple(f"{NAMESPACE}/{name}" for name in (
    "depth/relative", "depth/colored", "depth/camera_info", "flow", "flow/colored", "semantic", "semantic/colored",
    "motion/probability", "motion/mask", "ego_motion", "odometry", "points", "scene"))


@pytest.fixture(scope="module")
def launched_run(tmp_path_factory):
    from omeganet_ros.ros.replay import ReplayOptions, run_replay

    root = tmp_path_factory.mktemp("replay")
    bag = helpers.write_camera_bag(root / "camera.mcap", FRAMES)
    # Node names of their own, so that no other test's node on this test session's DDS domain is mistaken for it.
    options = ReplayOptions(bag=bag, out=root / "out", launch_node=True, pacing="keep-up", node_name="replay_test_launched",
                            namespace=NAMESPACE,
                            node_args="--ros-args " + " ".join(NODE_PARAMS), progress=False, node_timeout=120)
    report = run_replay(options, log=lambda m: None)
    return bag, root / "out", report


def test_output_bag_has_every_topic_with_one_message_per_answered_frame(launched_run):
    bag, out, report = launched_run
    output_bag = out / "outputs"
    topics = rosbag_io.list_topics(output_bag)
    assert set(PER_FRAME_TOPICS) | {"/diagnostics"} <= set(topics), sorted(topics)
    assert topics[f"{NAMESPACE}/scene"] == "omeganet_ros/msg/SceneUnderstanding"
    assert topics[f"{NAMESPACE}/odometry"] == "nav_msgs/msg/Odometry"
    counts = {t: 0 for t in PER_FRAME_TOPICS}
    stamps = {t: set() for t in PER_FRAME_TOPICS}
    for topic, _, _, msg in rosbag_io.iter_messages(output_bag, list(PER_FRAME_TOPICS)):
        counts[topic] += 1
        stamps[topic].add(rosbag_io.stamp_to_ns(msg.header.stamp))
    # Paper mode: the first and last frames have no neighbour on one side; every other frame is answered once.
    answered = {helpers.stamp(i) for i in range(1, FRAMES - 1)}
    assert counts == {t: FRAMES - 2 for t in PER_FRAME_TOPICS}
    assert all(s == answered for s in stamps.values())
    assert report["messages_recorded"][f"{NAMESPACE}/scene"] == FRAMES - 2


def test_outputs_follow_the_bags_clock(launched_run):
    _, out, _ = launched_run
    # /diagnostics is stamped with the node's clock: with use_sim_time it reads the bag's time from /clock.
    diag = [rosbag_io.stamp_to_ns(m.header.stamp)
            for _, _, _, m in rosbag_io.iter_messages(out / "outputs", ["/diagnostics"])]
    assert diag and all(helpers.T0_NS <= s <= helpers.T0_NS + 60 * 10**9 for s in diag), diag


def test_report_of_the_run(launched_run):
    bag, out, report = launched_run
    on_disk = json.loads((out / "report.json").read_text())
    t = on_disk["timing"]
    assert (t["frames_offered"], t["frames_processed"], t["frames_dropped"]) == (FRAMES, FRAMES - 2, 0)
    assert t["node_mode"].startswith("paper") and t["latency_ms"]["count"] == FRAMES - 2
    assert 0 < t["engine_ms"]["p50"] <= t["node_latency_ms"]["p50"] <= t["latency_from_trigger_ms"]["p50"]
    assert on_disk["model"]["random_weights"] is True
    for task in ("depth", "flow", "semantic", "motion", "pose", "odometry"):
        assert "skipped" not in on_disk["accuracy"][task], (task, on_disk["accuracy"][task])
    # ΩNet has no instances: the node says so on /diagnostics (recorded), and the report calls the task absent.
    assert on_disk["accuracy"]["instance"]["absent"] is True and on_disk["model"]["outputs_absent"] == ["instance"]
    assert on_disk["mosaic_panels"] == ["input", "depth", "flow", "semantics", "motion"]
    direct = evaluate_paths("depth", out / "outputs", bag, topic=f"{NAMESPACE}/depth/relative", gt_topic="/gt/depth", crop=None)
    assert on_disk["accuracy"]["depth"]["abs_rel"] == pytest.approx(direct["abs_rel"], rel=1e-12)
    for name in ("report.md", "mosaic.png", "run.mp4", "trajectory.png", "latency.png", "node.log"):
        assert (out / name).stat().st_size > 0, name


def _env():
    return dict(os.environ)


def test_bag_without_ground_truth_through_a_running_node_gives_a_timing_report(tmp_path):
    # Also: a node started separately (not by the replay), a sqlite3 bag, JPEG CompressedImage frames.
    bag = helpers.write_camera_bag(tmp_path / "no_gt", 6, gt=False, storage="sqlite3", compressed=True)
    node = subprocess.Popen([sys.executable, "-m", "omeganet_ros.ros.node", "--ros-args", "-p", "use_sim_time:=true",
                             "-r", "__node:=replay_test_running", "-p", "image_transport:=compressed", *NODE_PARAMS],
                            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "omeganet_ros.ros.replay", str(bag), "--out", str(tmp_path / "out"), "--fps", "4",
             "--image-topic", "/camera/image_raw/compressed", "--node-name", "replay_test_running",
             "--throughput-search", "--search-frames", "6", "--search-start-hz", "2", "--search-max-trials", "2",
             "--quiet", "--node-timeout", "120"],
            env=_env(), capture_output=True, text=True, timeout=240)
    finally:
        node.terminate()
        try:  # a frame in flight on a loaded 2-core machine can take seconds; a node that never exits is a failure
            node_output, _ = node.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            node.kill()
            node_output, _ = node.communicate()
            pytest.fail("the node did not exit within 60 s of SIGTERM:\n" + node_output.decode(errors="replace")[-3000:])
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert all("no ground truth" in r["skipped"] for r in report["accuracy"].values())
    t = report["timing"]
    # How many frames a loaded, shared CPU keeps up with varies; the bookkeeping must not.
    assert t["frames_offered"] == 6 and t["frames_processed"] >= 1 and t["latency_ms"]["count"] == t["frames_processed"]
    assert t["frames_dropped"] == 6 - t["frames_processed"] - t["frames_unanswerable"]
    assert t["offered_rate_hz"] == pytest.approx(4.0, rel=0.25)
    assert len(report["throughput"]["trials"]) == 2 and report["run"]["pacing"] == "fps"
    assert "report:" in result.stdout and "latency" in result.stdout
    assert (tmp_path / "out" / "mosaic.png").is_file() and not (tmp_path / "out" / "node.log").exists()


def test_bad_bags_fail_clearly_before_starting_anything(tmp_path, capsys):
    from omeganet_ros.ros.replay import main

    bag = helpers.write_camera_bag(tmp_path / "cam", 3, gt=False, storage="sqlite3")
    assert main([str(bag), "--out", str(tmp_path / "o1"), "--image-topic", "/front/image", "--launch-node"]) == 2
    assert "no image topic '/front/image'" in capsys.readouterr().err
    assert main([str(bag), "--out", str(tmp_path / "o2"), "--gt", "depth=/gt/depth", "--launch-node"]) == 2
    assert "no ground-truth topic(s) '/gt/depth'" in capsys.readouterr().err
    db = next(bag.glob("*.db3"))
    db.write_bytes(db.read_bytes()[:3000])
    assert main([str(bag), "--out", str(tmp_path / "o3"), "--launch-node"]) == 2
    assert "truncated, corrupt" in capsys.readouterr().err
    assert main([str(tmp_path / "absent.mcap"), "--out", str(tmp_path / "o4")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "o1" / "node.log").exists()   # no node was started for a bad bag
