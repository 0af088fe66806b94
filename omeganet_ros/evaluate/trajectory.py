"""Streaming evaluation of a camera trajectory (e.g. during bag replay): collect, then score."""
from __future__ import annotations

import numpy as np

from omeganet_ros.evaluate.odometry import SEGMENT_LENGTHS, evaluate_odometry
from omeganet_ros.evaluate.pose import evaluate_pose


class TrajectoryEvaluator:
    """Collects matched camera-to-world poses frame by frame; scores snippet ATE and KITTI odometry.

    ``add(gt_pose, pred_pose)`` per frame, in time order; ``pred_pose`` may be
    None for a frame without a prediction (it then only counts for the path
    length of the ground truth).
    """

    def __init__(self):
        self.gt: list[np.ndarray] = []
        self.pred: list[np.ndarray] = []
        self.pred_indices: list[int] = []

    def add(self, gt_pose: np.ndarray, pred_pose: np.ndarray | None) -> None:
        gt_pose = np.asarray(gt_pose, np.float64)
        if gt_pose.shape != (4, 4):
            raise ValueError(f"poses must be 4×4, got ground truth {gt_pose.shape}")
        if pred_pose is not None:
            pred_pose = np.asarray(pred_pose, np.float64)
            if pred_pose.shape != (4, 4):
                raise ValueError(f"poses must be 4×4, got prediction {pred_pose.shape}")
            self.pred.append(pred_pose)
            self.pred_indices.append(len(self.gt))
        self.gt.append(gt_pose)

    def result(self, alignment: str | None = "7dof", lengths=SEGMENT_LENGTHS) -> dict:
        """``{"pose": snippet ATE dict, "odometry": KITTI odometry dict}`` over the frames with a prediction."""
        if len(self.pred) < 2:
            raise ValueError(f"trajectory evaluation needs at least 2 predicted poses, got {len(self.pred)}")
        gt = np.stack(self.gt)
        pred = np.stack(self.pred)
        return {
            "pose": evaluate_pose(pred, gt[self.pred_indices]),
            "odometry": evaluate_odometry(gt, pred, np.array(self.pred_indices), alignment, lengths),
        }
