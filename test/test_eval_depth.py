"""Depth metrics (monodepth2 Eigen protocol) on hand-computed cases."""
from __future__ import annotations

import numpy as np
import pytest

from omeganet_ros.evaluate.depth import METRIC_NAMES, DepthEvaluator, compute_depth_errors, crop_mask, evaluate_depth


def test_errors_hand_computed():
    gt = np.array([10.0, 20.0])
    pred = np.array([12.0, 15.0])
    errors = compute_depth_errors(gt, pred)
    assert errors["abs_rel"] == pytest.approx((2 / 10 + 5 / 20) / 2)
    assert errors["sq_rel"] == pytest.approx((4 / 10 + 25 / 20) / 2)
    assert errors["rmse"] == pytest.approx(np.sqrt((4 + 25) / 2))
    assert errors["rmse_log"] == pytest.approx(np.sqrt((np.log(10 / 12) ** 2 + np.log(20 / 15) ** 2) / 2))
    # ratios 1.2 and 1.333: both < 1.25²; only the first < 1.25
    assert (errors["a1"], errors["a2"], errors["a3"]) == (0.5, 1.0, 1.0)


def test_median_scaling_removes_global_scale():
    rng = np.random.default_rng(0)
    gt = rng.uniform(5, 60, (40, 60)).astype(np.float32)
    scaled = gt * 0.037
    result = evaluate_depth([scaled], [gt], median_scaling=True, crop=None)
    assert result["abs_rel"] == pytest.approx(0.0, abs=1e-6) and result["a1"] == 1.0
    assert result["scale_ratio_median"] == pytest.approx(1 / 0.037, rel=1e-5)
    metric = evaluate_depth([scaled], [gt], median_scaling=False, crop=None)
    assert metric["abs_rel"] > 0.9  # clamped at 1e-3 … not rescued without median scaling


def test_invalid_ground_truth_and_clamping():
    gt = np.array([[10.0, 0.0, np.nan, np.inf, 100.0, -1.0]], np.float32)  # only 10 m is valid (< 80 m)
    pred = np.array([[200.0, 1.0, 1.0, 1.0, 1.0, 1.0]], np.float32)
    result = evaluate_depth([pred], [gt], median_scaling=False, crop=None)
    # 200 m clamped to 80 m
    assert result["abs_rel"] == pytest.approx(7.0)
    assert result["rmse"] == pytest.approx(70.0)


def test_per_image_mean_and_skipping():
    evaluator = DepthEvaluator(median_scaling=False, crop=None)
    evaluator.add(np.full((2, 2), 11.0), np.full((2, 2), 10.0))  # abs_rel 0.1
    evaluator.add(np.full((4, 4), 30.0), np.full((4, 4), 10.0))  # abs_rel 2.0 (more pixels, same weight)
    assert evaluator.add(np.ones((2, 2)), np.zeros((2, 2))) is None
    result = evaluator.result()
    assert result["abs_rel"] == pytest.approx((0.1 + 2.0) / 2)
    assert (result["num_images"], result["num_skipped"]) == (2, 1)


def test_garg_crop_and_resize():
    mask = crop_mask(375, 1242, "garg")
    rows, cols = np.nonzero(mask)
    assert (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1) == (153, 371, 44, 1197)
    gt = np.full((375, 1242), 20.0, np.float32)
    gt[:153] = 5.0  # outside the crop: ignored
    pred = np.full((192, 640), 20.0, np.float32)  # lower resolution: resized to the ground truth
    result = evaluate_depth([pred], [gt], median_scaling=False)
    assert result["abs_rel"] == pytest.approx(0.0, abs=1e-6)
    assert evaluate_depth([pred], [gt], median_scaling=False, crop=None)["abs_rel"] > 0.5


def test_bad_input():
    with pytest.raises(ValueError, match="H×W"):
        DepthEvaluator().add(np.ones((2, 2, 2)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="crop"):
        DepthEvaluator(crop="square")
    with pytest.raises(ValueError, match="no image"):
        DepthEvaluator().result()


def test_regions_are_scored_alone_with_the_whole_images_median_scale():
    gt = np.full((4, 6), 10.0, np.float32)
    pred = gt.copy()
    pred[:, :2] = 20.0  # a third of the image twice too far; the median keeps the scale of the rest
    region = np.zeros_like(gt, bool)
    region[:, :2] = True
    ev = DepthEvaluator(median_scaling=True, crop=None)
    ev.add(pred, gt, {"far": region, "rest": ~region, "empty": np.zeros_like(region)})
    out = ev.result()
    assert out["regions"]["far"]["abs_rel"] == pytest.approx(1.0)
    assert out["regions"]["rest"]["abs_rel"] == pytest.approx(0.0)
    assert out["abs_rel"] == pytest.approx(1 / 3)
    assert out["regions"]["empty"] == {**{m: None for m in METRIC_NAMES}, "num_images": 0}
    with pytest.raises(ValueError, match="region 'far'"):
        ev.add(pred, gt, {"far": region[:2]})
