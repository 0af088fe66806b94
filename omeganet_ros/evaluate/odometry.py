"""KITTI odometry metrics, computed as the kitti-odom-eval tool (Huangying Zhan, MIT) computes them.

* Both trajectories are first re-anchored at the first predicted frame
  (``pose_i ← inv(pose_first) @ pose_i``).
* Optional alignment of the predicted positions to the ground truth:
  ``"scale"`` (least-squares scale only), ``"6dof"`` (Umeyama rotation +
  translation), ``"7dof"`` (Umeyama with scale), ``"scale_7dof"`` (scale from
  the 7-DoF fit, no rotation/translation) or ``None``.
* ``t_err`` (%) and ``r_err`` (deg/100 m): for every first frame in steps of
  10 frames and every segment length 100, 200, …, 800 m (path length of the
  ground truth), the relative pose error of the segment divided by its length;
  averaged over all segments.
* ``ate`` (m): RMSE of the position differences after alignment.
* ``rpe_trans`` (m) and ``rpe_rot`` (deg): mean over consecutive frame pairs
  of the relative pose error.

Poses are camera-to-world 4×4 matrices (KITTI odometry convention). The
prediction may cover a subset of the ground-truth frames: it is indexed by
frame number (``pred_indices``; a 13-column KITTI file carries them).
"""
from __future__ import annotations

import numpy as np

SEGMENT_LENGTHS = (100, 200, 300, 400, 500, 600, 700, 800)  # metres
SEGMENT_STEP = 10  # frames between segment starts
ALIGNMENTS = (None, "scale", "6dof", "7dof", "scale_7dof")


def umeyama_alignment(source: np.ndarray, target: np.ndarray, with_scale: bool = False):
    """Least-squares similarity (Umeyama 1991) mapping ``source`` onto ``target``.

    ``source``, ``target``: 3×N points. Returns ``(R 3×3, t 3, scale)`` such that
    ``target ≈ scale · R @ source + t`` (scale = 1 unless ``with_scale``).
    """
    source = np.asarray(source, np.float64)
    target = np.asarray(target, np.float64)
    if source.shape != target.shape or source.ndim != 2:
        raise ValueError(f"umeyama_alignment needs two m×n point sets of equal shape, got {source.shape} and {target.shape}")
    m, n = source.shape
    mean_s = source.mean(axis=1, keepdims=True)
    mean_t = target.mean(axis=1, keepdims=True)
    centred_s = source - mean_s
    centred_t = target - mean_t
    var_s = np.sum(centred_s ** 2) / n
    cov = centred_t @ centred_s.T / n
    u, d, vt = np.linalg.svd(cov)
    sign = np.eye(m)
    if np.linalg.det(u) * np.linalg.det(vt) < 0.0:
        sign[m - 1, m - 1] = -1.0  # keep a proper rotation
    rot = u @ sign @ vt
    scale = float(np.trace(np.diag(d) @ sign) / var_s) if with_scale else 1.0
    trans = mean_t[:, 0] - scale * rot @ mean_s[:, 0]
    return rot, trans, scale


def rotation_angle(transform: np.ndarray) -> float:
    """Rotation angle (radians) of a 4×4 (or 3×3) transform, from its trace."""
    cos = 0.5 * (transform[0, 0] + transform[1, 1] + transform[2, 2] - 1.0)
    return float(np.arccos(max(min(cos, 1.0), -1.0)))


def translation_norm(transform: np.ndarray) -> float:
    return float(np.linalg.norm(transform[:3, 3]))


def trajectory_distances(positions: np.ndarray) -> np.ndarray:
    """Cumulative path length (m) at each frame of N×3 positions, 0 at the first."""
    steps = np.linalg.norm(np.diff(positions, axis=0), axis=1)
    return np.concatenate([[0.0], np.cumsum(steps)])


def _check_poses(name: str, poses: np.ndarray) -> np.ndarray:
    poses = np.asarray(poses, np.float64)
    if poses.ndim != 3 or poses.shape[1:] not in ((4, 4), (3, 4)):
        raise ValueError(f"{name} must be N×4×4 (or N×3×4) camera-to-world poses, got shape {poses.shape}")
    if poses.shape[1] == 3:
        full = np.tile(np.eye(4), (len(poses), 1, 1))
        full[:, :3] = poses
        poses = full
    if not np.all(np.isfinite(poses)):
        raise ValueError(f"{name} contains non-finite values")
    return poses


def align_trajectory(gt: np.ndarray, pred: np.ndarray, alignment: str | None):
    """Align N×4×4 predicted poses to matched N×4×4 ground-truth poses, from positions (as kitti-odom-eval).

    Returns ``(aligned poses N×4×4, scale applied)``.
    """
    if alignment not in ALIGNMENTS:
        raise ValueError(f"unknown alignment {alignment!r}; expected one of {ALIGNMENTS}")
    pred = pred.copy()
    if alignment is None:
        return pred, 1.0
    xyz_gt, xyz_pred = gt[:, :3, 3], pred[:, :3, 3]
    if alignment == "scale":
        denom = np.sum(xyz_pred ** 2)
        if denom == 0:
            raise ValueError("cannot scale-align a prediction whose positions are all zero")
        scale = float(np.sum(xyz_pred * xyz_gt) / denom)
        pred[:, :3, 3] *= scale
        return pred, scale
    rot, trans, scale = umeyama_alignment(xyz_pred.T, xyz_gt.T, with_scale=alignment != "6dof")
    pred[:, :3, 3] *= scale
    if alignment in ("6dof", "7dof"):
        transform = np.eye(4)
        transform[:3, :3] = rot
        transform[:3, 3] = trans
        pred = transform @ pred
    return pred, scale


def segment_errors(gt: np.ndarray, pred: np.ndarray, gt_valid: np.ndarray,
                   lengths=SEGMENT_LENGTHS, step: int = SEGMENT_STEP) -> np.ndarray:
    """KITTI segment errors: rows (first_frame, r_err rad/m, t_err m/m, length m).

    ``gt`` and ``pred`` are indexed by frame number (N×4×4, the same N);
    ``gt_valid[i]`` says whether frame i has a prediction.
    """
    dist = trajectory_distances(gt[:, :3, 3])
    rows = []
    for first in range(0, len(gt), step):
        for length in lengths:
            # first frame whose path length exceeds dist[first] + length
            later = np.nonzero(dist[first:] > dist[first] + length)[0]
            if len(later) == 0:
                continue
            last = first + int(later[0])
            if not (gt_valid[first] and gt_valid[last]):
                continue
            delta_gt = np.linalg.inv(gt[first]) @ gt[last]
            delta_pred = np.linalg.inv(pred[first]) @ pred[last]
            error = np.linalg.inv(delta_pred) @ delta_gt
            rows.append((first, rotation_angle(error) / length, translation_norm(error) / length, length))
    return np.asarray(rows, np.float64).reshape(-1, 4)


def evaluate_odometry(gt_poses: np.ndarray, pred_poses: np.ndarray, pred_indices=None,
                      alignment: str | None = "7dof", lengths=SEGMENT_LENGTHS) -> dict:
    """KITTI odometry metrics of one sequence.

    ``gt_poses``: N×4×4 camera-to-world, one per frame 0…N−1. ``pred_poses``:
    M×4×4 camera-to-world, for frames ``pred_indices`` (default 0…M−1).
    Returns ``t_err`` (%), ``r_err`` (deg/100 m), ``ate`` (m), ``rpe_trans`` (m),
    ``rpe_rot`` (deg), plus ``num_segments``, ``num_frames`` and ``scale``
    (the scale applied to the prediction by the alignment, 1 if none).
    ``lengths``: segment lengths in metres (KITTI: 100…800). A trajectory
    shorter than the shortest segment has no segment: ``t_err`` and ``r_err``
    are then NaN (kitti-odom-eval reports 0, which would read as perfect).
    """
    gt_poses = _check_poses("ground-truth poses", gt_poses)
    pred_poses = _check_poses("predicted poses", pred_poses)
    if pred_indices is None:
        pred_indices = np.arange(len(pred_poses))
    pred_indices = np.asarray(pred_indices)
    if pred_indices.shape != (len(pred_poses),):
        raise ValueError(f"{len(pred_indices)} frame indices for {len(pred_poses)} predicted poses")
    if not np.all(np.equal(np.mod(pred_indices, 1), 0)):
        raise ValueError("predicted frame indices must be whole numbers")
    pred_indices = pred_indices.astype(np.int64)
    if len(pred_indices) < 2:
        raise ValueError("odometry evaluation needs at least 2 predicted poses")
    if len(np.unique(pred_indices)) != len(pred_indices):
        raise ValueError("predicted frame indices are not unique")
    if pred_indices.min() < 0 or pred_indices.max() >= len(gt_poses):
        raise ValueError(f"predicted frame indices {pred_indices.min()}…{pred_indices.max()} "
                         f"outside the {len(gt_poses)} ground-truth frames")

    # Re-anchor both at the first predicted frame. (kitti-odom-eval re-anchors
    # only the ground-truth frames that have a prediction; rigidly moving all of
    # them gives the same figures whenever the prediction has no gaps, and
    # correct path lengths when it has.)
    first = pred_indices[0]
    gt = np.linalg.inv(gt_poses[first]) @ gt_poses
    pred = np.linalg.inv(pred_poses[0]) @ pred_poses
    matched_gt = gt[pred_indices]
    aligned, scale = align_trajectory(matched_gt, pred, alignment)

    # Predicted poses laid out by frame number, for the segment search.
    pred_full = np.tile(np.eye(4), (len(gt), 1, 1))
    pred_full[pred_indices] = aligned
    valid = np.zeros(len(gt), bool)
    valid[pred_indices] = True
    segments = segment_errors(gt, pred_full, valid, lengths)
    t_err = float(segments[:, 2].mean()) if len(segments) else float("nan")
    r_err = float(segments[:, 1].mean()) if len(segments) else float("nan")

    ate = float(np.sqrt(np.mean(np.sum((matched_gt[:, :3, 3] - aligned[:, :3, 3]) ** 2, axis=1))))

    # RPE over consecutive frame numbers i, i+1 that both have a prediction.
    trans_errors, rot_errors = [], []
    for i in pred_indices:
        if i + 1 >= len(gt) or not valid[i + 1]:
            continue
        rel_gt = np.linalg.inv(gt[i]) @ gt[i + 1]
        rel_pred = np.linalg.inv(pred_full[i]) @ pred_full[i + 1]
        error = np.linalg.inv(rel_gt) @ rel_pred
        trans_errors.append(translation_norm(error))
        rot_errors.append(rotation_angle(error))
    return {
        "t_err": t_err * 100.0,
        "r_err": float(np.degrees(r_err)) * 100.0,
        "ate": ate,
        "rpe_trans": float(np.mean(trans_errors)) if trans_errors else float("nan"),
        "rpe_rot": float(np.degrees(np.mean(rot_errors))) if rot_errors else float("nan"),
        "num_segments": int(len(segments)),
        "num_frames": int(len(pred_indices)),
        "scale": float(scale),
    }
