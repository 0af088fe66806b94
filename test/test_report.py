"""The replay report (ROS-free): metrics equal the evaluation suite's, timing figures, pictures, video."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

import replay_helpers as helpers
from omeganet_ros.data import rosbag_io
from omeganet_ros.evaluate.depth import DepthEvaluator
from omeganet_ros.evaluate.flow import FlowEvaluator
from omeganet_ros.evaluate.inputs import normalise_motion_gt
from omeganet_ros.evaluate.motion import MotionEvaluator
from omeganet_ros.evaluate.pose import evaluate_pose
from omeganet_ros.evaluate.semantic import SemanticEvaluator
from omeganet_ros.report import timing as timing_mod
from omeganet_ros.report.visualize import colorize_depth, colorize_flow, mosaic_row
from omeganet_ros.report.writer import write_report

FRAMES = 10
SKIPPED = (0, 9)   # the frames a paper-mode node cannot answer


def _timing(frames=FRAMES, answered_latency_s=0.15, skip=SKIPPED):
    timing = timing_mod.RunTiming()
    for i in range(frames):
        timing.offer(helpers.stamp(i), i * 0.1)
        if i not in skip:
            timing.receive(helpers.stamp(i), i * 0.1 + answered_latency_s)
    return timing


@pytest.fixture(scope="module")
def bags(tmp_path_factory):
    root = tmp_path_factory.mktemp("report_bags")
    return {"camera": helpers.write_camera_bag(root / "camera.mcap", FRAMES),
            "pred": helpers.write_prediction_bag(root / "pred.mcap", FRAMES, SKIPPED),
            "no_gt": helpers.write_camera_bag(root / "no_gt.mcap", FRAMES, gt=False)}


@pytest.fixture(scope="module")
def report(bags, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    result = write_report(out, input_bag=bags["camera"], output_bag=bags["pred"], image_topic="/camera/image_raw",
                          timing=_timing(), model={"checkpoint": None, "random_weights": True})
    return out, result


def _by_stamp(bag, topic):
    return {rosbag_io.stamp_to_ns(m.header.stamp): m for _, _, _, m in rosbag_io.iter_messages(bag, [topic])}


def test_report_metrics_equal_the_evaluation_suite_run_directly(bags, report):
    out, result = report
    on_disk = json.loads((out / "report.json").read_text())
    pred = {t: _by_stamp(bags["pred"], t) for t in ("/depth/relative", "/flow", "/semantic", "/motion/mask", "/odometry")}
    gt = {t: _by_stamp(bags["camera"], t) for t in ("/gt/depth", "/gt/flow", "/gt/semantic", "/gt/motion", "/gt/pose")}
    stamps = sorted(set(pred["/depth/relative"]) & set(gt["/gt/depth"]))
    assert len(stamps) == FRAMES - len(SKIPPED)

    depth, flow, semantic, motion = DepthEvaluator(median_scaling=True, crop=None), FlowEvaluator(), \
        SemanticEvaluator(), MotionEvaluator()
    for s in stamps:
        depth.add(rosbag_io.image_to_numpy(pred["/depth/relative"][s]), rosbag_io.image_to_numpy(gt["/gt/depth"][s]))
        flow.add(rosbag_io.image_to_numpy(pred["/flow"][s]), rosbag_io.image_to_numpy(gt["/gt/flow"][s]))
        semantic.add(rosbag_io.image_to_numpy(pred["/semantic"][s]), rosbag_io.image_to_numpy(gt["/gt/semantic"][s]))
        motion.add(rosbag_io.image_to_numpy(pred["/motion/mask"][s]),
                   normalise_motion_gt(rosbag_io.image_to_numpy(gt["/gt/motion"][s])))
    pred_poses = np.stack([rosbag_io.pose_msg_to_matrix(pred["/odometry"][s].pose.pose) for s in stamps])
    gt_poses = np.stack([rosbag_io.pose_msg_to_matrix(gt["/gt/pose"][s].pose) for s in stamps])
    direct = {"depth": depth.result(), "flow": flow.result(), "semantic": semantic.result(),
              "motion": motion.result(), "pose": evaluate_pose(pred_poses, gt_poses)}
    names = {"depth": ("abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3"),
             "flow": ("epe_all", "fl_all"), "semantic": ("miou", "pixel_acc"),
             "motion": ("pixel_acc", "mean_iou"), "pose": ("ate_mean", "ate_std")}
    for task, metrics in names.items():
        for name in metrics:
            assert on_disk["accuracy"][task][name] == pytest.approx(direct[task][name], rel=1e-9), (task, name)
    # The predictions are genuinely imperfect, so equality is not a coincidence of perfect scores.
    assert 0.01 < on_disk["accuracy"]["depth"]["abs_rel"] < 0.5
    assert 0.2 < on_disk["accuracy"]["flow"]["epe_all"] < 2.0
    assert on_disk["accuracy"]["depth"]["num_images"] == len(stamps)
    assert "odometry" in on_disk["accuracy"] and "ate" in on_disk["accuracy"]["odometry"]


def test_report_files_and_timing_section(report):
    out, result = report
    for name in ("report.json", "report.md", "mosaic.png", "run.mp4", "trajectory.png", "latency.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    t = result["timing"]
    assert (t["frames_offered"], t["frames_processed"], t["frames_dropped"], t["frames_unanswerable"]) == (10, 8, 0, 2)
    assert t["latency_ms"]["p50"] == pytest.approx(150.0) and t["latency_ms"]["max"] == pytest.approx(150.0)
    assert t["offered_rate_hz"] == pytest.approx(10.0)
    markdown = (out / "report.md").read_text()
    assert "randomly initialised" in markdown and "abs_rel" in markdown and "| 150.0 |" in markdown
    for answer in ("median-depth plane", "zero flow", "majority class everywhere"):  # beside every figure
        assert f"| trivial: {answer} |" in markdown, answer
    assert result["accuracy"]["flow"]["trivial"]["epe_all"] > 0

    mosaic = cv2.imread(str(out / "mosaic.png"))
    assert mosaic.shape[1] == 5 * helpers.WIDTH and mosaic.shape[0] >= 4 * helpers.HEIGHT

    video = cv2.VideoCapture(str(out / "run.mp4"))
    count = 0
    while video.read()[0]:
        count += 1
    assert count == FRAMES and result["video"]["frames"] == FRAMES


def test_bag_without_ground_truth_still_gives_a_timing_report(bags, tmp_path):
    result = write_report(tmp_path, input_bag=bags["no_gt"], output_bag=bags["pred"],
                          image_topic="/camera/image_raw", timing=_timing())
    assert all("skipped" in r and "no ground truth" in r["skipped"] for r in result["accuracy"].values())
    assert result["timing"]["frames_processed"] == 8 and result["timing"]["latency_ms"]["count"] == 8
    assert (tmp_path / "report.md").is_file() and (tmp_path / "latency.png").is_file()
    assert "trajectory" in result["files"]   # the estimate is drawn even without ground truth


def test_timing_counts_drops_beyond_the_unanswerable_frames():
    timing = _timing(frames=20, skip=(0, 5, 6, 7, 19))
    summary = timing_mod.summarize(timing, lookahead=1)
    assert summary["frames_unanswerable"] == 2 and summary["frames_dropped"] == 3
    assert summary["drop_fraction"] == pytest.approx(3 / 18)
    causal = timing_mod.summarize(timing, lookahead=0)
    assert causal["frames_unanswerable"] == 1 and causal["frames_dropped"] == 4
    # Latency from the frame that completed the triple: one frame period less in the paper mode.
    assert summary["latency_from_trigger_ms"]["p50"] == pytest.approx(50.0)

    # With drops, the frame completing b's triple is the next frame the node processed (the next answered one).
    timing = timing_mod.RunTiming()
    for i in range(8):
        timing.offer(helpers.stamp(i), i * 0.1)
    timing.receive(helpers.stamp(1), 0.45)   # triple (0, 1, 4): frames 2 and 3 dropped
    timing.receive(helpers.stamp(4), 0.75)   # triple (1, 4, 7)
    summary = timing_mod.summarize(timing, lookahead=1)
    assert summary["per_frame"]["latency_from_trigger_ms"] == pytest.approx([50.0, 50.0])
    assert summary["frames_dropped"] == 4 and summary["latency_ms"]["max"] == pytest.approx(350.0)


def test_throughput_search_finds_the_highest_rate_within_five_percent():
    capacity = 3.3  # Hz a simulated node sustains

    def trial(rate):
        drop = 0.0 if rate <= capacity else 1 - capacity / rate
        return {"rate_hz": rate, "drop_fraction": drop}

    search = timing_mod.ThroughputSearch(start_hz=1.0, growth=1.5, refinements=3)
    while (rate := search.next_rate()) is not None:
        search.add(trial(rate))
    best = search.result()["max_sustained_rate_hz"]
    assert 2.8 < best <= capacity / 0.95   # dropping 1 − capacity/rate ≤ 5 % still passes
    rates = [t["rate_hz"] for t in search.result()["trials"]]
    assert rates[:4] == pytest.approx([1.0, 1.5, 2.25, 3.375]) and len(rates) <= 10
    # A slower failing rate caps the result even if a faster one passed by chance.
    assert timing_mod.best_sustained_rate([{"rate_hz": 1, "drop_fraction": 0}, {"rate_hz": 2, "drop_fraction": 0.2},
                                           {"rate_hz": 3, "drop_fraction": 0}]) == 1


def test_visualisation_conventions():
    flow = np.zeros((4, 4, 2), np.float32)
    flow[..., 0] = 3.0                     # rightwards: red on the Middlebury wheel
    flow[0, 0] = np.nan
    rgb = colorize_flow(flow)
    assert tuple(rgb[0, 0]) == (0, 0, 0)
    r, g, b = rgb[1, 1].astype(int)
    assert r > 200 and g < 80 and b < 80
    assert tuple(colorize_flow(np.zeros((2, 2, 2), np.float32))[0, 0]) == (255, 255, 255)

    depth = np.array([[2.0, 50.0], [np.nan, 10.0]], np.float32)
    coloured = colorize_depth(depth).astype(int).sum(axis=2)
    assert coloured[0, 0] > coloured[1, 1] > coloured[0, 1] and coloured[1, 0] == 0

    row = mosaic_row(np.zeros((8, 10, 3), np.uint8), depth=np.ones((4, 5), np.float32), labels=False)
    assert row.shape == (8, 50, 3)
    with pytest.raises(ValueError, match="H×W×3"):
        mosaic_row(np.zeros((8, 10), np.uint8))


def test_moreau_run_reports_instance_pq_and_the_tasks_its_model_lacks_as_absent(bags, tmp_path):
    """A run of the node with a Moreau et al. checkpoint: instance PQ from the evaluation suite (on thing
    instances: the ground truth's building id is left out), depth and odometry as for ΩNet, and flow, semantic
    and motion reported as absent (the node said so on /diagnostics) — not evaluated, not faked."""
    from omeganet_ros.evaluate.instance import InstanceEvaluator
    from omeganet_ros.instances import thing_instances

    pred = helpers.write_moreau_prediction_bag(tmp_path / "moreau_pred.mcap", FRAMES, SKIPPED)
    result = write_report(tmp_path / "report", input_bag=bags["camera"], output_bag=pred,
                          image_topic="/camera/image_raw", timing=_timing())
    accuracy = result["accuracy"]
    for task in ("flow", "semantic", "motion"):
        assert accuracy[task]["absent"] is True and "does not estimate" in accuracy[task]["skipped"], task
    assert result["model"]["outputs_absent"] == ["flow", "semantic", "motion", "camera_info"]
    for task in ("depth", "pose", "odometry", "instance"):
        assert "skipped" not in accuracy[task], (task, accuracy[task])

    direct = InstanceEvaluator()
    pred_ids = _by_stamp(pred, "/instance")
    gt_ids, gt_semantic = _by_stamp(bags["camera"], "/gt/instance"), _by_stamp(bags["camera"], "/gt/semantic")
    for s in sorted(pred_ids):
        direct.add(rosbag_io.image_to_numpy(pred_ids[s]),
                   thing_instances(rosbag_io.image_to_numpy(gt_ids[s]), rosbag_io.image_to_numpy(gt_semantic[s])))
    expected = direct.result()
    # 8 answered frames × 2 cars; the first three merge the two touching cars (IoU 0.5 each: no match).
    assert (expected["tp"], expected["fp"], expected["fn"]) == (10, 3, 6)
    for name in ("pq", "sq", "rq", "tp", "fp", "fn"):
        assert accuracy["instance"][name] == pytest.approx(expected[name], rel=1e-12), name
    assert accuracy["instance"]["pq"] == pytest.approx(10 / 14.5)

    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "**flow** (`/flow` vs `/gt/flow`): **absent**" in markdown and "| pq | sq | rq |" in markdown
    assert result["mosaic_panels"] == ["input", "depth", "instances"]
    mosaic = cv2.imread(str(tmp_path / "report" / "mosaic.png"))
    assert mosaic.shape[1] == 3 * helpers.WIDTH


def test_mosaic_panels_follow_the_model():
    from omeganet_ros.report.visualize import panels_for

    assert panels_for(["instance"], False) == ("input", "depth", "flow", "semantics", "motion")  # ΩNet
    assert panels_for(["flow", "semantic", "motion", "camera_info"], True) == ("input", "depth", "instances")
    assert panels_for(None, True)[-1] == "instances" and len(panels_for(None, False)) == 5  # unknown model
    ids = np.zeros((8, 10), np.uint16)
    ids[2:5, 2:6] = 3
    row = mosaic_row(np.zeros((8, 10, 3), np.uint8), instance=ids, labels=False, panels=("input", "instances"))
    assert row.shape == (8, 20, 3) and row[3, 13].any() and not row[0, 10].any()
    with pytest.raises(ValueError, match="unknown mosaic panels"):
        mosaic_row(np.zeros((8, 10, 3), np.uint8), panels=("input", "optical flow"))


def test_instance_ground_truth_is_told_from_stuff_by_the_semantic_topic_given(bags, tmp_path):
    pred = helpers.write_moreau_prediction_bag(tmp_path / "moreau_pred.mcap", FRAMES, SKIPPED)
    result = write_report(tmp_path / "report", input_bag=bags["camera"], output_bag=pred, video=False,
                          image_topic="/camera/image_raw", timing=None, gt_topics={"semantic": "/gt/labels"})
    assert "no /gt/labels topic to tell thing instances" in result["accuracy"]["instance"]["skipped"]
