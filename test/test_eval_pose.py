"""Snippet ATE (SfMLearner / monodepth2 protocol)."""
from __future__ import annotations

import numpy as np
import pytest

from omeganet_ros.evaluate.pose import compute_snippet_ate, evaluate_pose, motions_from_poses


def _straight(n, step=1.0):
    poses = np.tile(np.eye(4), (n, 1, 1))
    poses[:, 2, 3] = np.arange(n) * step
    return poses


def test_scale_and_offset_are_aligned():
    gt = np.array([[0, 0, 0], [0, 0, 1], [0, 0, 2.1], [0.1, 0, 3]], float)
    pred = gt * 0.3 + 5.0  # wrong scale and origin
    assert compute_snippet_ate(gt, pred) == pytest.approx(0.0, abs=1e-12)


def test_hand_computed_snippet():
    gt = np.array([[0, 0, 0], [0, 0, 1.0], [0, 0, 2.0]])
    pred = np.array([[0, 0, 0], [0, 0, 1.0], [1.0, 0, 2.0]])
    scale = (1 + 4) / (1 + 1 + 4)
    error = pred * scale - gt
    expected = np.sqrt(np.sum(error ** 2)) / 3
    assert compute_snippet_ate(gt, pred) == pytest.approx(expected)


def test_trajectory_scale_free_and_counts_snippets():
    gt = _straight(12)
    result = evaluate_pose(_straight(12, step=0.2), gt)
    assert result["ate_mean"] == pytest.approx(0.0, abs=1e-12)
    assert result["num_snippets"] == 11  # one per motion, as monodepth2 (shorter snippets at the end)

    wobbly = _straight(12, step=0.2)
    wobbly[5:, 0, 3] = 0.3  # a sideways jump between frames 4 and 5
    bad = evaluate_pose(wobbly, gt)
    assert bad["ate_mean"] > 0.01 and bad["ate_std"] > 0


def test_motions_follow_package_convention():
    poses = _straight(3)
    motions = motions_from_poses(poses)
    assert np.allclose(poses[0] @ motions[0], poses[1])
    with pytest.raises(ValueError, match="N×4×4"):
        motions_from_poses(np.zeros((3, 3, 3)))


def test_the_snippet_ate_cannot_see_a_backward_trajectory_the_sign_agreement_can():
    """Issue 13: a CamNet whose t→t+1 pointed backwards scored a better ATE than the shipped one. The least-squares
    scale of the protocol turns negative and aligns the mirrored trajectory; translation_sign_agreement tells."""
    from omeganet_ros.evaluate.pose import evaluate_pose_snippets
    from omeganet_ros.evaluate.trivial import motion_correlations

    gt = motions_from_poses(_straight(12, step=1.5))
    backward = gt.copy()
    backward[:, :3, 3] *= -1
    assert evaluate_pose_snippets(backward, gt)["ate_mean"] == pytest.approx(0.0, abs=1e-9)
    assert motion_correlations(backward, gt)["translation_sign_agreement"] == 0.0
    assert motion_correlations(gt, gt)["translation_sign_agreement"] == 1.0
