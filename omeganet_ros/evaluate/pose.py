"""Short-snippet ATE of ego-motion, as SfMLearner and monodepth2 (``evaluate_pose.py``) compute it.

For every frame i, the relative motions of the snippet starting there (up to
``track_length − 1`` of them; shorter near the end of the sequence, as in
monodepth2) are chained from the identity into positions, for the prediction
and for the ground truth. The predicted positions are shifted so that the
first ones coincide, scaled by the least-squares factor
``s = Σ gt·pred / Σ pred²``, and the snippet error is
``sqrt(Σ ‖s·pred − gt‖²) / n`` (n positions: the reference formula, not a
root of the mean). ``ate_mean`` and ``ate_std`` are over all snippets.

Motions are given in the package convention (``geometry.py``): ``M_{i→i+1}``
is the pose of camera i+1 in camera i, ``pose_{i+1} = pose_i @ M``. monodepth2
chains the point transforms ``inv(M)`` of both prediction and ground truth;
this module does the same so that its figures are comparable with theirs.
"""
from __future__ import annotations

import numpy as np

TRACK_LENGTH = 5


def snippet_positions(point_transforms: np.ndarray) -> np.ndarray:
    """Chain K×4×4 transforms from the identity: (K+1)×3 positions (monodepth2 ``dump_xyz``)."""
    current = np.eye(4)
    positions = [current[:3, 3].copy()]
    for transform in point_transforms:
        current = current @ transform
        positions.append(current[:3, 3].copy())
    return np.asarray(positions)


def compute_snippet_ate(gt_xyz: np.ndarray, pred_xyz: np.ndarray) -> float:
    """Scale-aligned ATE of one snippet (n×3 positions each, metres of the ground truth)."""
    gt_xyz = np.asarray(gt_xyz, np.float64)
    pred_xyz = np.asarray(pred_xyz, np.float64)
    if gt_xyz.shape != pred_xyz.shape or gt_xyz.ndim != 2 or gt_xyz.shape[1] != 3:
        raise ValueError(f"snippet positions must be two n×3 arrays of equal shape, got {gt_xyz.shape} and {pred_xyz.shape}")
    pred_xyz = pred_xyz + (gt_xyz[0] - pred_xyz[0])
    denom = np.sum(pred_xyz ** 2)
    scale = np.sum(gt_xyz * pred_xyz) / denom if denom > 0 else 0.0
    return float(np.sqrt(np.sum((pred_xyz * scale - gt_xyz) ** 2)) / gt_xyz.shape[0])


def motions_from_poses(poses: np.ndarray) -> np.ndarray:
    """N×4×4 camera-to-world poses → (N−1)×4×4 camera motions ``inv(pose_i) @ pose_{i+1}``."""
    poses = np.asarray(poses, np.float64)
    if poses.ndim != 3 or poses.shape[1:] != (4, 4):
        raise ValueError(f"poses must be N×4×4, got shape {poses.shape}")
    return np.linalg.inv(poses[:-1]) @ poses[1:]


def evaluate_pose_snippets(pred_motions: np.ndarray, gt_motions: np.ndarray,
                           track_length: int = TRACK_LENGTH) -> dict:
    """Snippet ATE of (N−1)×4×4 predicted camera motions against matched ground-truth motions.

    Returns ``ate_mean`` and ``ate_std`` (metres) and ``num_snippets``.
    """
    pred_motions = np.asarray(pred_motions, np.float64)
    gt_motions = np.asarray(gt_motions, np.float64)
    if pred_motions.shape != gt_motions.shape or pred_motions.ndim != 3 or pred_motions.shape[1:] != (4, 4):
        raise ValueError(f"motions must be two K×4×4 arrays of equal shape, got {pred_motions.shape} and {gt_motions.shape}")
    if len(pred_motions) == 0:
        raise ValueError("pose evaluation needs at least one motion (two frames)")
    if track_length < 2:
        raise ValueError(f"track_length must be at least 2, got {track_length}")
    pred_points = np.linalg.inv(pred_motions)
    gt_points = np.linalg.inv(gt_motions)
    ates = []
    for i in range(len(pred_motions)):
        window = slice(i, i + track_length - 1)
        ates.append(compute_snippet_ate(snippet_positions(gt_points[window]), snippet_positions(pred_points[window])))
    return {"ate_mean": float(np.mean(ates)), "ate_std": float(np.std(ates)), "num_snippets": len(ates)}


def evaluate_pose(pred_poses: np.ndarray, gt_poses: np.ndarray, track_length: int = TRACK_LENGTH) -> dict:
    """Snippet ATE from two matched N×4×4 camera-to-world trajectories (any world frames, any scale)."""
    return evaluate_pose_snippets(motions_from_poses(pred_poses), motions_from_poses(gt_poses), track_length)
