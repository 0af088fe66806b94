"""Motion segmentation metrics (KITTI 2015, as EPC++ and ΩNet report them).

The binary moving/static map is scored with the four figures of the FCN
evaluation (Long et al.), over a 2×2 confusion matrix accumulated on the
whole dataset (rows ground truth, columns prediction; 0 static, 1 moving):

* ``pixel_acc`` = Σ diag / Σ all
* ``mean_acc``  = mean over classes of diag / row sum
* ``mean_iou``  = mean over classes of diag / (row + column − diag)
* ``fw_iou``    = Σ over classes of (row sum / Σ all) · IoU

Ground-truth values other than 0 and 1 (e.g. 255) are ignored; any non-zero
prediction counts as moving (a floating-point prediction is read as a
motion probability: moving where > 0.5). Classes absent from both sides are left out of
the means (NaN).
"""
from __future__ import annotations

import cv2
import numpy as np

from omeganet_ros.evaluate.depth import as_2d


class MotionEvaluator:
    """Accumulates the 2×2 moving/static confusion matrix over a stream of masks."""

    def __init__(self):
        self.confusion = np.zeros((2, 2), np.int64)
        self.num_images = 0

    def add(self, pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None) -> None:
        """H×W prediction (bool, 0/non-zero, or probability) and ground truth (0 static, 1 moving, else ignored)."""
        pred = as_2d(np.asarray(pred))
        gt = as_2d(np.asarray(gt))
        if pred.ndim != 2 or gt.ndim != 2:
            raise ValueError(f"motion masks must be H×W, got prediction {pred.shape} and ground truth {gt.shape}")
        if pred.dtype.kind == "f":
            pred = (pred > 0.5).astype(np.uint8)  # a probability map
        pred = pred.astype(np.uint8) if pred.dtype == bool else pred
        if pred.shape != gt.shape:
            pred = cv2.resize(pred.astype(np.float32), (gt.shape[1], gt.shape[0]), interpolation=cv2.INTER_NEAREST)
        keep = (gt == 0) | (gt == 1)
        if valid is not None:
            keep &= np.asarray(valid, bool)
        moving_pred = (pred[keep] != 0).astype(np.int64)
        moving_gt = gt[keep].astype(np.int64)
        self.confusion += np.bincount(moving_gt * 2 + moving_pred, minlength=4).reshape(2, 2)
        self.num_images += 1

    def result(self) -> dict:
        return {**motion_metrics(self.confusion), "num_images": self.num_images}


def motion_metrics(conf: np.ndarray) -> dict:
    """pixel_acc, mean_acc, mean_iou, fw_iou of a 2×2 (or C×C) confusion matrix, rows = ground truth."""
    conf = np.asarray(conf, np.float64)
    total = conf.sum()
    if total == 0:
        raise ValueError("no pixel with a motion ground truth was evaluated")
    diag = np.diag(conf)
    rows, cols = conf.sum(axis=1), conf.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.where(rows > 0, diag / rows, np.nan)
        union = rows + cols - diag
        iou = np.where(union > 0, diag / union, np.nan)
    freq = rows / total
    present = freq > 0
    return {
        "pixel_acc": float(diag.sum() / total),
        "mean_acc": float(np.nanmean(acc)),
        "mean_iou": float(np.nanmean(iou)),
        "fw_iou": float(np.sum(freq[present] * iou[present])),
        "iou_static": None if np.isnan(iou[0]) else float(iou[0]),
        "iou_moving": None if np.isnan(iou[1]) else float(iou[1]),
    }


def evaluate_motion(preds, gts) -> dict:
    """Motion metrics over matched sequences of H×W predicted and ground-truth masks."""
    evaluator = MotionEvaluator()
    for pred, gt in zip(preds, gts, strict=True):
        evaluator.add(pred, gt)
    return evaluator.result()
