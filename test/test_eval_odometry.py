"""KITTI odometry metrics: the published kitti-odom-eval figures, and constructed cases."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from omeganet_ros.data.layout import read_poses
from omeganet_ros.evaluate.odometry import evaluate_odometry, rotation_angle, umeyama_alignment
from omeganet_ros.evaluate.runner import evaluate_paths

# kitti-odom-eval's published results for its example_0 (7-DoF alignment).
REFERENCE = {
    "09": {"t_err": 2.884112, "r_err": 0.249056, "ate": 8.386619, "rpe_trans": 0.343413, "rpe_rot": 0.063389},
    "10": {"t_err": 3.297840, "r_err": 0.304590, "ate": 6.630158, "rpe_trans": 0.047353, "rpe_rot": 0.066264},
}


@pytest.mark.parametrize("seq", ["09", "10"])
def test_reproduces_kitti_odom_eval(shared_data, seq):
    root = shared_data / "kitti_odometry"
    estimate = root / "example_estimates" / f"{seq}.txt"
    indices = np.loadtxt(estimate)[:, 0]
    result = evaluate_odometry(read_poses(root / "poses" / f"{seq}.txt"), read_poses(estimate), indices, "7dof")
    for name, expected in REFERENCE[seq].items():
        assert result[name] == pytest.approx(expected, rel=5e-5), name
    # Same figures through the path-based API (13-column file → frame indices).
    by_path = evaluate_paths("odometry", estimate, root / "poses" / f"{seq}.txt", alignment="7dof")
    for name, expected in REFERENCE[seq].items():
        assert by_path[name] == pytest.approx(expected, rel=5e-5), name


def _trajectory(n=400, seed=0):
    """A smooth driving-like trajectory: ~1 m per frame with slow yaw changes."""
    rng = np.random.default_rng(seed)
    poses = np.tile(np.eye(4), (n, 1, 1))
    yaw = np.cumsum(rng.normal(0, 0.01, n))
    for i in range(1, n):
        step = np.eye(4)
        step[:3, :3] = Rotation.from_euler("y", yaw[i] - yaw[i - 1]).as_matrix()
        step[:3, 3] = (0.0, 0.0, 1.0)
        poses[i] = poses[i - 1] @ step
    return poses


def test_perfect_prediction_scores_zero_under_any_similarity():
    gt = _trajectory()
    sim = np.eye(4)
    sim[:3, :3] = Rotation.from_euler("xyz", [0.3, -0.2, 1.0]).as_matrix()
    sim[:3, 3] = (5.0, -2.0, 7.0)
    pred = sim @ gt
    pred[:, :3, 3] *= 0.25  # unknown monocular scale
    result = evaluate_odometry(gt, pred, alignment="7dof")
    assert result["num_segments"] > 0
    for name in ("t_err", "r_err", "ate", "rpe_trans", "rpe_rot"):
        assert result[name] == pytest.approx(0.0, abs=1e-6), name
    assert result["scale"] == pytest.approx(4.0)
    # Without scale alignment the wrong scale shows.
    assert evaluate_odometry(gt, pred, alignment="6dof")["t_err"] > 50


def test_known_drift():
    n = 300
    gt = np.tile(np.eye(4), (n, 1, 1))
    gt[:, 2, 3] = np.arange(n)  # straight, 1 m per frame
    pred = gt.copy()
    pred[:, :3, 3] *= 1.02  # 2 % too long everywhere
    result = evaluate_odometry(gt, pred, alignment=None)
    # A segment of L metres starting at frame f ends at the first frame beyond f + L, i.e. f + L + 1:
    # its end-point error is 0.02 (L + 1) m, divided by L.
    expected = [0.02 * (length + 1) / length for first in range(0, n, 10)
                for length in range(100, 900, 100) if first + length + 1 < n]
    assert result["num_segments"] == len(expected)
    assert result["t_err"] == pytest.approx(100 * np.mean(expected), rel=1e-9)
    assert result["r_err"] == pytest.approx(0.0, abs=1e-9)
    assert result["rpe_trans"] == pytest.approx(0.02, rel=1e-9)


def test_umeyama_recovers_similarity():
    rng = np.random.default_rng(1)
    points = rng.normal(size=(3, 50))
    rot = Rotation.from_euler("zyx", [0.5, 0.1, -0.3]).as_matrix()
    target = 2.5 * rot @ points + np.array([[1.0], [2.0], [3.0]])
    r, t, s = umeyama_alignment(points, target, with_scale=True)
    assert np.allclose(r, rot) and np.allclose(t, [1, 2, 3]) and s == pytest.approx(2.5)


def test_rotation_angle():
    transform = np.eye(4)
    transform[:3, :3] = Rotation.from_rotvec([0, 0.2, 0]).as_matrix()
    assert rotation_angle(transform) == pytest.approx(0.2)


def test_bad_input():
    gt = _trajectory(20)
    with pytest.raises(ValueError, match="outside"):
        evaluate_odometry(gt, gt[:5], pred_indices=[16, 17, 18, 19, 20])
    with pytest.raises(ValueError, match="alignment"):
        evaluate_odometry(gt, gt, alignment="8dof")
    with pytest.raises(ValueError, match="N×4×4"):
        evaluate_odometry(gt, np.zeros((5, 4)))


def test_short_trajectory_has_no_segments_and_custom_lengths():
    gt = _trajectory(50)  # ~50 m: shorter than the shortest KITTI segment
    pred = gt.copy()
    pred[:, :3, 3] *= 1.1
    kitti = evaluate_odometry(gt, pred, alignment=None)
    assert kitti["num_segments"] == 0 and np.isnan(kitti["t_err"]) and np.isnan(kitti["r_err"])
    short = evaluate_odometry(gt, pred, alignment=None, lengths=(10, 20))
    assert short["num_segments"] > 0 and short["t_err"] == pytest.approx(10.0, rel=0.15)


def test_trajectory_evaluator_streams():
    from omeganet_ros.evaluate.trajectory import TrajectoryEvaluator

    gt = _trajectory(30)
    evaluator = TrajectoryEvaluator()
    for i, pose in enumerate(gt):
        evaluator.add(pose, None if i == 0 else pose)  # first frame without a prediction
    result = evaluator.result()
    assert result["odometry"]["num_frames"] == 29
    assert result["odometry"]["ate"] == pytest.approx(0.0, abs=1e-9)
    assert result["pose"]["ate_mean"] == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="4×4"):
        evaluator.add(np.eye(3), None)
