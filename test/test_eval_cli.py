"""omeganet-eval end to end: sequence folders, KITTI files and ROS 2 bags give the same figures as the API."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from omeganet_ros.cli.eval import main
from omeganet_ros.data.layout import SequenceFolder, write_poses
from omeganet_ros.evaluate import evaluate_depth, evaluate_flow, evaluate_motion, evaluate_pose, evaluate_semantic

KEYS = {
    "depth": {"abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3"},
    "flow": {"epe_noc", "epe_all", "fl_all"},
    "semantic": {"miou", "miou_category", "pixel_acc"},
    "motion": {"pixel_acc", "mean_acc", "mean_iou", "fw_iou"},
    "pose": {"ate_mean", "ate_std"},
    "odometry": {"t_err", "r_err", "ate", "rpe_trans", "rpe_rot"},
}
N, H, W = 6, 24, 32


def _world(seed):
    """Random ground truth and a perturbed prediction of it, per frame."""
    rng = np.random.default_rng(seed)
    frames = []
    pose = np.eye(4)
    for i in range(N):
        depth = rng.uniform(2, 60, (H, W)).astype(np.float32)
        depth[:3] = np.inf  # sky
        flow = rng.normal(0, 5, (H, W, 2)).astype(np.float32)
        flow[:, :2] = np.nan  # out of view
        semantic = rng.integers(0, 19, (H, W)).astype(np.uint8)
        semantic[0] = 255
        motion = (rng.random((H, W)) < 0.2).astype(np.uint8)
        step = np.eye(4)
        step[:3, :3] = Rotation.from_euler("y", rng.normal(0, 0.02)).as_matrix()
        step[:3, 3] = (rng.normal(0, 0.05), 0, 1.0)
        pose = pose @ step
        frames.append(dict(depth=depth, flow=flow, semantic=semantic, motion=motion, pose=pose.copy()))
    return frames


def _predict(gt, seed):
    rng = np.random.default_rng(seed)
    out = []
    for f in gt:
        depth = np.where(np.isfinite(f["depth"]), f["depth"], 80.0) * 0.1 * rng.uniform(0.8, 1.2, (H, W))
        flow = np.nan_to_num(f["flow"]) + rng.normal(0, 2, (H, W, 2))
        semantic = np.where(rng.random((H, W)) < 0.7, f["semantic"], rng.integers(0, 19, (H, W))).astype(np.uint8)
        motion = np.where(rng.random((H, W)) < 0.8, f["motion"], 1 - f["motion"]).astype(np.uint8)
        pose = f["pose"].copy()
        pose[:3, 3] = pose[:3, 3] * 0.5 + rng.normal(0, 0.02, 3)
        out.append(dict(depth=depth.astype(np.float32), flow=flow.astype(np.float32), semantic=semantic,
                        motion=motion, pose=pose))
    return out


def _write_folder(root, frames):
    seq = SequenceFolder(root)
    for i, f in enumerate(frames):
        seq.write(i, depth=f["depth"], flow_fw=f["flow"], semantic=f["semantic"], motion=f["motion"])
    seq.write_poses(np.stack([f["pose"] for f in frames]))
    return root


def _write_bag(path, frames, prefix):
    from omeganet_ros.data.rosbag_io import BagWriter

    with BagWriter(path) as bag:
        for i, f in enumerate(frames):
            stamp = 1_000_000_000 + i * 100_000_000
            bag.write_image(f"{prefix}/depth", stamp, f["depth"], "32FC1", "camera")
            bag.write_image(f"{prefix}/flow", stamp, f["flow"], "32FC2", "camera")
            bag.write_image(f"{prefix}/semantic", stamp, f["semantic"], "mono8", "camera")
            bag.write_image(f"{prefix}/motion", stamp, f["motion"] * 255, "mono8", "camera")
            bag.write_pose(f"{prefix}/pose", stamp, f["pose"], "world")
    return path


def _run(capsys, *args):
    assert main(list(args)) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def worlds():
    gt = _world(0)
    return gt, _predict(gt, 1)


@pytest.fixture(scope="module")
def written(tmp_path_factory, worlds):
    """The worlds as sequence folders and bags (mcap and sqlite3), written once."""
    gt, pred = worlds
    root = tmp_path_factory.mktemp("eval_cli")
    return {
        "gt_dir": _write_folder(root / "gt_seq", gt),
        "pred_dir": _write_folder(root / "pred_seq", pred),
        "gt_bag": _write_bag(root / "gt_bag.mcap", gt, "/gt"),
        "pred_bag": _write_bag(root / "pred_bag.db3", pred, "/omeganet"),
    }


def _api(task, gt, pred):
    if task == "depth":
        return evaluate_depth([p["depth"] for p in pred], [g["depth"] for g in gt])
    if task == "flow":
        return evaluate_flow([p["flow"] for p in pred], [g["flow"] for g in gt])
    if task == "semantic":
        return evaluate_semantic([p["semantic"] for p in pred], [g["semantic"] for g in gt])
    if task == "motion":
        return evaluate_motion([p["motion"] for p in pred], [g["motion"] for g in gt])
    return evaluate_pose(np.stack([p["pose"] for p in pred]), np.stack([g["pose"] for g in gt]))


@pytest.mark.parametrize("task", ["depth", "flow", "semantic", "motion", "pose"])
def test_folders_and_bags_match_api(capsys, worlds, written, task):
    gt, pred = worlds
    gt_dir, pred_dir, gt_bag, pred_bag = written["gt_dir"], written["pred_dir"], written["gt_bag"], written["pred_bag"]
    expected = _api(task, gt, pred)
    from_folders = _run(capsys, task, "--pred", str(pred_dir), "--gt", str(gt_dir), "--json")
    assert KEYS[task] <= set(from_folders)
    for key in KEYS[task]:
        assert from_folders[key] == pytest.approx(expected[key], rel=1e-5, abs=1e-9), key
    assert expected["ate_mean" if task == "pose" else next(iter(KEYS[task]))] != 0  # a real, non-trivial case

    from_bags = _run(capsys, task, "--pred", str(pred_bag), "--topic", f"/omeganet/{task}", "--gt", str(gt_bag),
                     "--json")
    # bag vs folder: matched by position
    mixed = _run(capsys, task, "--pred", str(pred_bag), "--topic", f"/omeganet/{task}", "--gt", str(gt_dir),
                 "--json")
    for key in KEYS[task]:
        assert from_bags[key] == pytest.approx(expected[key], rel=1e-5, abs=1e-9), key
        assert mixed[key] == pytest.approx(expected[key], rel=1e-5, abs=1e-9), key


def test_odometry_cli_and_markdown(tmp_path, capsys, worlds):
    gt, pred = worlds
    write_poses(tmp_path / "gt.txt", np.stack([g["pose"] for g in gt]))
    write_poses(tmp_path / "pred.txt", np.stack([p["pose"] for p in pred]))
    result = _run(capsys, "odometry", "--pred", str(tmp_path / "pred.txt"), "--gt", str(tmp_path / "gt.txt"),
                  "--json", "--align", "7dof")
    assert KEYS["odometry"] <= set(result)
    assert result["scale"] == pytest.approx(2.0, rel=0.05)
    assert main(["odometry", "--pred", str(tmp_path / "pred.txt"), "--gt", str(tmp_path / "gt.txt"),
                 "--markdown"]) == 0
    table = capsys.readouterr().out
    assert table.startswith("| t_err (%) | r_err (deg/100 m) |") and table.count("\n") == 3


def test_cli_errors_are_clear(tmp_path, capsys, worlds, written):
    gt, _ = worlds
    gt_dir, bag = written["gt_dir"], written["gt_bag"]
    assert main(["depth", "--pred", str(tmp_path / "missing"), "--gt", str(gt_dir)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["depth", "--pred", str(bag), "--gt", str(gt_dir), "--json"]) == 2
    assert "--topic" in capsys.readouterr().err
    assert main(["depth", "--pred", str(bag), "--topic", "/nope", "--gt", str(gt_dir)]) == 2
    assert "/nope" in capsys.readouterr().err
    short = _write_folder(tmp_path / "short", gt[:2])
    assert main(["flow", "--pred", str(bag), "--topic", "/gt/flow", "--gt", str(short)]) == 2
    assert "counts differ" in capsys.readouterr().err


def test_kitti_depth_drive(shared_data, capsys):
    drive = shared_data / "kitti_raw_tiny/2011_09_26/2011_09_26_drive_0023_sync"
    result = _run(capsys, "depth", "--pred", str(drive), "--gt", str(drive), "--json", "--metric")
    assert result["abs_rel"] == 0.0 and result["a1"] == 1.0 and result["num_images"] == 7


def test_median_scaling_follows_metric_flag(tmp_path, capsys, worlds, written):
    gt, pred = worlds
    auto = _run(capsys, "depth", "--pred", str(written["pred_dir"]), "--gt", str(written["gt_dir"]), "--json")
    assert auto["median_scaling"] is True
    metric_dir = _write_folder(tmp_path / "metric", pred)
    SequenceFolder(metric_dir).write_meta({"depth_metric": True})
    metric = _run(capsys, "depth", "--pred", str(metric_dir), "--gt", str(written["gt_dir"]), "--json")
    assert metric["median_scaling"] is False and metric["abs_rel"] > auto["abs_rel"]  # predictions are 10× off
    forced = _run(capsys, "depth", "--pred", str(metric_dir), "--gt", str(written["gt_dir"]), "--json",
                  "--median-scaling")
    assert forced["abs_rel"] == pytest.approx(auto["abs_rel"])


def test_kitti_flow_noc_is_found_for_a_prediction_file_keyed_by_position(shared_data, tmp_path, capsys):
    """A single .npy prediction (key 0) against KITTI's folder (key 10): epe_noc must use flow_noc, not repeat epe_all."""
    from omeganet_ros.data.flow_io import read_flow

    gt = shared_data / "kitti_flow"
    zero = np.zeros_like(read_flow(gt / "flow_occ" / "000010_10.png"))
    pred = tmp_path / "zero.npy"
    np.save(pred, zero)
    assert main(["flow", "--pred", str(pred), "--gt", str(gt), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    noc, occ = read_flow(gt / "flow_noc" / "000010_10.png"), read_flow(gt / "flow_occ" / "000010_10.png")
    expect_noc = float(np.nanmean(np.linalg.norm(np.where(np.isfinite(noc), noc, np.nan), axis=-1)))
    expect_all = float(np.nanmean(np.linalg.norm(np.where(np.isfinite(occ), occ, np.nan), axis=-1)))
    assert result["epe_noc"] == pytest.approx(expect_noc, rel=1e-5)
    assert result["epe_all"] == pytest.approx(expect_all, rel=1e-5)
    assert result["epe_noc"] != pytest.approx(result["epe_all"], rel=1e-3)


def test_middlebury_folder_reads_its_flo_not_its_frames(shared_data, tmp_path, capsys):
    from omeganet_ros.data.flow_io import read_flow

    gt = shared_data / "middlebury_flow" / "Urban2"
    truth = read_flow(gt / "flow10.flo")
    pred = tmp_path / "zero.npy"
    np.save(pred, np.zeros_like(truth))
    assert main(["flow", "--pred", str(pred), "--gt", str(gt), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    expect = float(np.nanmean(np.linalg.norm(truth, axis=-1)))
    assert result["epe_all"] == pytest.approx(expect, rel=1e-5)


def test_sequence_folder_against_kitti_folder_pairs_by_position(shared_data, tmp_path, capsys):
    from omeganet_ros.data.flow_io import read_flow

    gt = shared_data / "kitti_flow"
    truth = read_flow(gt / "flow_occ" / "000010_10.png")
    seq = SequenceFolder(tmp_path / "seq")
    seq.write(0, flow_fw=np.nan_to_num(truth))  # frame 0 of a sequence is KITTI's 000010
    assert main(["flow", "--pred", str(tmp_path / "seq"), "--gt", str(gt), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["epe_all"] == pytest.approx(0.0, abs=1e-4)


def test_depth_colouring_shows_saturation_at_the_nearest_depth():
    from omeganet_ros.visualize import colorize_depth

    depth = np.linspace(2.0, 80.0, 100 * 100, dtype=np.float32).reshape(100, 100)
    depth[:3] = 2.0  # 3 % of the image clamped at the minimum depth
    depth[3:6] = 2.5  # nearer than the rest, not clamped
    rgb = colorize_depth(depth).astype(int)
    assert not np.array_equal(rgb[0, 0], rgb[4, 0]), "the clamped patch looks like merely near pixels"


def _trivial_prediction(task, g, gt):
    """What the trivial answer predicts for ground-truth frame ``g`` (majority class over all of ``gt``)."""
    from omeganet_ros.evaluate import trivial

    if task == "depth":
        return trivial.depth_plane(g["depth"])
    if task == "flow":
        return np.zeros_like(g["flow"])
    if task == "semantic":
        counts = np.bincount(np.concatenate([f["semantic"][f["semantic"] < 19] for f in gt]), minlength=19)
        return np.full_like(g["semantic"], np.argmax(counts))
    return np.zeros_like(g["motion"])


@pytest.mark.parametrize("task", ["depth", "flow", "semantic", "motion", "pose"])
def test_every_figure_comes_with_the_trivial_answer(capsys, worlds, written, task):
    """The "trivial" entry equals the metric of actually predicting the trivial answer; markdown prints its row."""
    gt, _ = worlds
    result = _run(capsys, task, "--pred", str(written["pred_dir"]), "--gt", str(written["gt_dir"]), "--json")
    if task == "pose":
        from omeganet_ros.evaluate import trivial
        from omeganet_ros.evaluate.pose import evaluate_pose_snippets, motions_from_poses

        motions = motions_from_poses(np.stack([g["pose"] for g in gt]))
        expected = evaluate_pose_snippets(trivial.constant_velocity(motions), motions)
        assert result["yaw_correlation"] is not None
    else:
        expected = _api(task, gt, [{task: _trivial_prediction(task, g, gt)} for g in gt])
    for key in KEYS[task]:
        assert result["trivial"][key] == pytest.approx(expected[key], rel=1e-5, abs=1e-9), key
    assert main([task, "--pred", str(written["pred_dir"]), "--gt", str(written["gt_dir"]), "--markdown"]) == 0
    table = capsys.readouterr().out
    assert "| trivial: " in table and "| prediction |" in table
    assert main([task, "--pred", str(written["pred_dir"]), "--gt", str(written["gt_dir"])]) == 0
    assert "(trivial: " in capsys.readouterr().out
