"""The trivial answers every accuracy figure is printed beside, so a collapsed network cannot pass for a trained one.

* depth: a plane at the ground truth's median depth;
* flow: zero flow;
* semantic: the majority class of the evaluated ground truth, everywhere;
* motion: nothing moves;
* instances: the connected components of the *true* thing mask (an oracle foreground without any instance
  reasoning: touching or overlapping objects merge);
* ego-motion: constant velocity — the mean true motion of the sequence, every frame (an oracle constant:
  a CamNet that outputs one motion whatever it sees cannot beat it).

The confusion-matrix answers are derived from the evaluator's own matrix (its rows are the ground truth),
so they cost no second pass over the data.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from .motion import motion_metrics
from .semantic import metrics_from_confusion

ANSWERS = {"depth": "median-depth plane", "flow": "zero flow", "semantic": "majority class everywhere",
           "motion": "nothing moves",
           "instance": "connected components of the true thing mask", "pose": "constant velocity (the sequence's mean true motion)"}


def depth_plane(gt_depth: np.ndarray) -> np.ndarray:
    """H×W ones, to be scored with median scaling: the plane at the median of the evaluated ground-truth pixels
    (after crop and depth range), whether the prediction itself is metric or not."""
    return np.ones(np.asarray(gt_depth).shape[:2], np.float32)


def zero_flow(flow: np.ndarray) -> np.ndarray:
    """H×W×2 zeros."""
    return np.zeros_like(np.asarray(flow, np.float32))


def majority_class(confusion: np.ndarray) -> dict:
    """Semantic metrics of predicting the most frequent ground-truth class everywhere, from a 19×20 confusion."""
    confusion = np.asarray(confusion)
    per_class = confusion.sum(axis=1)
    majority = int(np.argmax(per_class))
    trivial = np.zeros_like(confusion)
    trivial[:, majority] = per_class
    return {"answer": ANSWERS["semantic"], "class": majority, **metrics_from_confusion(trivial)}


def nothing_moves(confusion: np.ndarray) -> dict:
    """Motion metrics of an all-static mask, from a 2×2 confusion (rows = ground truth static, moving)."""
    confusion = np.asarray(confusion)
    trivial = np.zeros_like(confusion)
    trivial[:, 0] = confusion.sum(axis=1)
    return {"answer": ANSWERS["motion"], **motion_metrics(trivial)}


def connected_components(gt_instance: np.ndarray) -> np.ndarray:
    """H×W uint16 ids: one per 8-connected blob of the true thing pixels (``gt_instance`` > 0), 0 elsewhere."""
    import cv2

    _, labels = cv2.connectedComponents((np.asarray(gt_instance) > 0).astype(np.uint8), connectivity=8)
    return labels.astype(np.uint16)


def constant_velocity(gt_motions: np.ndarray) -> np.ndarray:
    """K×4×4: the mean of K true camera motions (mean rotation, mean translation), repeated K times."""
    gt_motions = np.asarray(gt_motions, np.float64)
    constant = np.eye(4)
    constant[:3, :3] = Rotation.from_matrix(gt_motions[:, :3, :3]).mean().as_matrix()
    constant[:3, 3] = gt_motions[:, :3, 3].mean(axis=0)
    return np.repeat(constant[None], len(gt_motions), axis=0)


def motion_correlations(pred_motions: np.ndarray, gt_motions: np.ndarray) -> dict:
    """Pearson correlation of predicted and true yaw (rotation about the camera's y axis, radians) and forward
    translation (z); a constant output has none (None). Also the yaw spread of both, and ``translation_sign_agreement``:
    the fraction of motions whose translation points to the same side as the truth's (positive dot product). The
    snippet ATE cannot see that sign: its least-squares scale turns negative for a trajectory driven backwards."""
    pred_motions = np.asarray(pred_motions, np.float64)
    gt_motions = np.asarray(gt_motions, np.float64)

    def corr(a, b):
        return float(np.corrcoef(a, b)[0, 1]) if len(a) > 2 and np.std(a) > 0 and np.std(b) > 0 else None

    yaw_pred = Rotation.from_matrix(pred_motions[:, :3, :3]).as_rotvec()[:, 1]
    yaw_gt = Rotation.from_matrix(gt_motions[:, :3, :3]).as_rotvec()[:, 1]
    return {"yaw_correlation": corr(yaw_pred, yaw_gt),
            "forward_correlation": corr(pred_motions[:, 2, 3], gt_motions[:, 2, 3]),
            "yaw_std_pred": float(np.std(yaw_pred)), "yaw_std_gt": float(np.std(yaw_gt)),
            "translation_sign_agreement": float(np.mean(np.sum(pred_motions[:, :3, 3] * gt_motions[:, :3, 3], axis=1) > 0))}
