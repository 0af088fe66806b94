"""KITTI 2015 flow metrics: real ground truth against itself and zero flow, and hand-made cases."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from omeganet_ros.evaluate.flow import FlowEvaluator, evaluate_flow, interpolate_background
from omeganet_ros.evaluate.runner import evaluate_paths


def _kitti_gt_plain(path):
    """Independent reader: plain OpenCV + numpy, as the KITTI devkit defines the format."""
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED).astype(np.float64)
    u = (raw[..., 2] - 2 ** 15) / 64.0
    v = (raw[..., 1] - 2 ** 15) / 64.0
    return u, v, raw[..., 0] > 0


def test_kitti_ground_truth_against_itself_and_zero(shared_data):
    root = shared_data / "kitti_flow"
    u_occ, v_occ, valid_occ = _kitti_gt_plain(root / "flow_occ" / "000010_10.png")
    u_noc, v_noc, valid_noc = _kitti_gt_plain(root / "flow_noc" / "000010_10.png")
    gt_occ = np.where(valid_occ[..., None], np.dstack([u_occ, v_occ]), np.nan)
    gt_noc = np.where(valid_noc[..., None], np.dstack([u_noc, v_noc]), np.nan)

    perfect = evaluate_flow([np.nan_to_num(gt_occ)], [gt_occ], [gt_noc])
    assert perfect["epe_all"] == 0.0 and perfect["fl_all"] == 0.0
    # noc ground truth is the occ one restricted to visible pixels: also exact
    assert perfect["epe_noc"] == 0.0

    zero = evaluate_flow([np.zeros_like(gt_occ)], [gt_occ], [gt_noc])
    magnitude_occ = np.hypot(u_occ, v_occ)[valid_occ]
    assert zero["epe_all"] == pytest.approx(magnitude_occ.mean(), rel=1e-6)
    assert zero["epe_noc"] == pytest.approx(np.hypot(u_noc, v_noc)[valid_noc].mean(), rel=1e-6)
    outliers = (magnitude_occ > 3) & (magnitude_occ > 0.05 * magnitude_occ)
    assert zero["fl_all"] == pytest.approx(100 * outliers.mean(), rel=1e-9)
    assert zero["epe_noc"] < zero["epe_all"]  # occluded pixels are the fast-moving borders here

    # Through the folder reader (KITTI layout: flow_occ/ + flow_noc/), a sparse prediction (the noc
    # ground truth) is filled by background interpolation, so it is scored on every occ pixel.
    by_path = evaluate_paths("flow", root / "flow_noc", root)
    assert by_path["epe_noc"] == 0.0 and 0 < by_path["epe_all"] < zero["epe_all"]
    assert by_path["noc_mask"] == "separate"


def test_outlier_definition():
    gt = np.zeros((1, 4, 2), np.float32)
    gt[0, :, 0] = [10.0, 100.0, 100.0, 2.0]
    pred = gt.copy()
    pred[0, :, 0] += [3.5, 4.0, 6.0, 3.5]  # 35 % & >3 px: out; 4 % of 100: in; 6 %: out; 175 % & 3.5 px: out
    evaluator = FlowEvaluator()
    image = evaluator.add(pred, gt)
    assert image["fl_all"] == pytest.approx(75.0)
    assert image["epe_all"] == pytest.approx(np.mean([3.5, 4.0, 6.0, 3.5]))


def test_nan_ground_truth_is_invalid_and_fl_all_is_pixel_weighted():
    evaluator = FlowEvaluator()
    gt = np.full((2, 2, 2), np.nan, np.float32)
    gt[0, 0] = (1.0, 0.0)
    evaluator.add(np.array([[[11.0, 0.0]] * 2] * 2, np.float32), gt)  # 1 valid pixel, outlier, EPE 10
    gt2 = np.zeros((2, 2, 2), np.float32)
    evaluator.add(np.zeros((2, 2, 2), np.float32), gt2)  # 4 valid pixels, perfect
    result = evaluator.result()
    assert result["epe_all"] == pytest.approx(5.0)  # per-image mean of 10 and 0
    assert result["fl_all"] == pytest.approx(100 * 1 / 5)  # over all 5 valid pixels
    assert result["epe_noc"] == result["epe_all"]  # single mask: same figure


def test_prediction_resized_with_values_scaled():
    gt = np.zeros((20, 40, 2), np.float32)
    gt[..., 0] = 8.0
    pred = np.zeros((10, 20, 2), np.float32)
    pred[..., 0] = 4.0  # half resolution: half the pixels of displacement
    assert evaluate_flow([pred], [gt])["epe_all"] == pytest.approx(0.0, abs=1e-5)


def test_background_interpolation():
    flow = np.full((3, 7, 2), np.nan, np.float32)
    flow[1, 1] = (4.0, -1.0)
    flow[1, 5] = (2.0, 3.0)
    filled = interpolate_background(flow)
    assert np.allclose(filled[1, 2:5], (2.0, -1.0))  # gap: the smaller value per component
    assert np.allclose(filled[1, 0], (4.0, -1.0)) and np.allclose(filled[1, 6], (2.0, 3.0))
    assert np.allclose(filled[0], filled[1]) and np.allclose(filled[2], filled[1])
    with pytest.raises(ValueError, match="no valid"):
        interpolate_background(np.full((2, 2, 2), np.nan))
