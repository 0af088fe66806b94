"""Motion segmentation metrics on a hand-computed binary case."""
from __future__ import annotations

import numpy as np
import pytest

from omeganet_ros.evaluate.motion import MotionEvaluator, evaluate_motion


def test_hand_computed():
    gt = np.array([[0, 0, 0, 0, 0, 0, 1, 1, 1, 1]], np.uint8)
    pred = np.array([[0, 0, 0, 0, 0, 1, 1, 1, 0, 0]], np.uint8)
    result = evaluate_motion([pred], [gt])
    # static: TP 5, FN 1, FP 2 → acc 5/6, IoU 5/8; moving: TP 2, FN 2, FP 1 → acc 2/4, IoU 2/5
    assert result["pixel_acc"] == pytest.approx(7 / 10)
    assert result["mean_acc"] == pytest.approx((5 / 6 + 2 / 4) / 2)
    assert result["mean_iou"] == pytest.approx((5 / 8 + 2 / 5) / 2)
    assert result["fw_iou"] == pytest.approx(0.6 * 5 / 8 + 0.4 * 2 / 5)


def test_ignore_probability_and_all_static():
    evaluator = MotionEvaluator()
    gt = np.array([[0, 1, 255]], np.uint8)
    evaluator.add(np.array([[0.2, 0.9, 0.9]], np.float32), gt)  # probabilities, thresholded at 0.5
    assert evaluator.result()["pixel_acc"] == 1.0
    static = evaluate_motion([np.zeros((3, 3), bool)], [np.zeros((3, 3), np.uint8)])
    # the moving class is absent from both sides: left out of the means
    assert static["mean_iou"] == 1.0 and static["fw_iou"] == 1.0 and static["iou_moving"] is None
    with pytest.raises(ValueError, match="no pixel"):
        evaluate_motion([np.zeros((2, 2))], [np.full((2, 2), 7, np.uint8)])


def test_ground_truth_formats():
    from omeganet_ros.evaluate.inputs import normalise_motion_gt

    assert normalise_motion_gt(np.array([[0, 255]], np.uint8)).tolist() == [[0, 1]]
    assert normalise_motion_gt(np.array([[0, 1, 255]], np.uint8)).tolist() == [[0, 1, 255]]  # 255 = ignore
    instances = np.array([[0, 3, 7]], np.uint8)  # KITTI obj_map: instance ids
    assert normalise_motion_gt(instances, "nonzero").tolist() == [[0, 1, 1]]
    with pytest.raises(ValueError, match="format"):
        normalise_motion_gt(instances, "ids")
