"""Covariance of the estimated ego-motion from the spread of recent motions (ROS-free).

CamNet gives one motion per frame pair and no uncertainty. Over a short window
a vehicle's motion changes smoothly, so the frame-to-frame *differences* of the
estimated motions are mostly estimation noise: for independent per-step errors
of variance σ², the difference of two consecutive steps has variance 2σ². The
per-axis variance of those differences over the last ``window`` steps, halved,
is taken as the variance of one step (an upper bound: real accelerations add
to it). The pose covariance accumulates the step covariances (a random walk),
rotated into the odometry frame.

Vectors are (x, y, z, rot_x, rot_y, rot_z): translation in the units of the
motion (metres when metric) and rotation vector in radians, in the frame the
motions are expressed in — the order of nav_msgs/Odometry covariances.
"""
from __future__ import annotations

from collections import deque

import cv2
import numpy as np

# Variance reported before enough motions were seen (fewer than ``MIN_STEPS``): "very uncertain".
UNKNOWN_VARIANCE = 1.0e3
MIN_STEPS = 3
# Lower bound of a variance, so that a perfectly constant motion never reads as exact.
MIN_VARIANCE = 1.0e-9


def motion_vector(motion: np.ndarray) -> np.ndarray:
    """4×4 rigid motion → (x, y, z, rot_x, rot_y, rot_z): its translation and rotation vector (rad)."""
    motion = np.asarray(motion, dtype=np.float64)
    return np.concatenate([motion[:3, 3], cv2.Rodrigues(motion[:3, :3])[0].ravel()])


class MotionSpread:
    """Step and accumulated pose covariances (6×6) from the last ``window`` motions."""

    def __init__(self, window: int = 10):
        if window < MIN_STEPS:
            raise ValueError(f"motion covariance window must be ≥ {MIN_STEPS}, got {window}")
        self._steps: deque[np.ndarray] = deque(maxlen=window)
        self._pose = np.zeros((6, 6))

    def reset(self) -> None:
        """A new trajectory: forget the motions and the accumulated pose covariance."""
        self._steps.clear()
        self._pose = np.zeros((6, 6))

    @property
    def known(self) -> bool:
        return len(self._steps) >= MIN_STEPS

    def step_covariance(self) -> np.ndarray:
        """6×6 diagonal covariance of one step; :data:`UNKNOWN_VARIANCE` on the diagonal until it is known."""
        if not self.known:
            return np.eye(6) * UNKNOWN_VARIANCE
        differences = np.diff(np.stack(self._steps), axis=0)
        return np.diag(np.maximum(np.mean(differences ** 2, axis=0) / 2.0, MIN_VARIANCE))

    @property
    def pose_covariance(self) -> np.ndarray:
        """6×6 covariance of the accumulated pose in the odometry frame (:data:`UNKNOWN_VARIANCE` until known)."""
        return self._pose.copy() if self.known else np.eye(6) * UNKNOWN_VARIANCE

    def add(self, motion: np.ndarray, orientation: np.ndarray) -> np.ndarray:
        """Record one step and accumulate the pose covariance.

        ``motion``: 4×4 step in the moving frame; ``orientation``: 3×3 rotation of the
        moving frame, after the step, in the frame the pose covariance is accumulated in.
        Returns the step covariance (moving frame). The steps before the covariance was
        known are counted with the first known step covariance.
        """
        self._steps.append(motion_vector(motion))
        step = self.step_covariance()
        if self.known:
            steps = MIN_STEPS if len(self._steps) == MIN_STEPS and not self._pose.any() else 1
            self._pose = self._pose + steps * rotate_covariance(step, orientation)
        return step


def rotate_covariance(covariance: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """6×6 (translation, rotation) covariance expressed in frame A → in frame B, given the 3×3 rotation of A in B."""
    R = np.asarray(rotation, dtype=np.float64)
    rotate = np.zeros((6, 6))
    rotate[:3, :3] = rotate[3:, 3:] = R
    return rotate @ np.asarray(covariance, dtype=np.float64) @ rotate.T
