"""Semantic segmentation metrics over the 19 Cityscapes train classes.

Conventions (those of cityscapesScripts' pixel-level evaluation):

* The confusion matrix is accumulated over the whole dataset; rows are the
  ground-truth trainId 0…18, columns the predicted trainId 0…18 plus one last
  column for any other prediction (e.g. 255): a pixel of a real class
  predicted as "none" is a false negative of that class.
* Ground-truth pixels labelled 255 (or any id ≥ 19) are ignored.
* Class IoU = TP / (TP + FP + FN); a class with TP + FP + FN = 0 (absent from
  both ground truth and prediction) has IoU NaN and is left out of the mean:
  ``miou`` is the mean over the classes that occur.
* Category IoU: the same on the 7 categories (flat, construction, object,
  nature, sky, human, vehicle), the confusion matrix summed by category.
* ``pixel_acc``: correctly labelled / evaluated ground-truth pixels.
"""
from __future__ import annotations

import cv2
import numpy as np

from omeganet_ros.classes import CATEGORY_NAMES, CLASS_NAMES, NUM_CLASSES, train_id_to_category
from omeganet_ros.evaluate.depth import as_2d


def confusion_matrix(pred: np.ndarray, gt: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """num_classes × (num_classes + 1) int64 counts of (gt, pred) pairs; gt ≥ num_classes ignored."""
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in shape")
    gt = gt.astype(np.int64).ravel()
    pred = pred.astype(np.int64).ravel()
    keep = (gt >= 0) & (gt < num_classes)
    gt, pred = gt[keep], pred[keep]
    pred = np.where((pred >= 0) & (pred < num_classes), pred, num_classes)
    counts = np.bincount(gt * (num_classes + 1) + pred, minlength=num_classes * (num_classes + 1))
    return counts.reshape(num_classes, num_classes + 1)


def iou_from_confusion(conf: np.ndarray) -> np.ndarray:
    """Per-class IoU from a C×(C+1) confusion matrix; NaN for classes absent from both sides."""
    num_classes = conf.shape[0]
    tp = np.diag(conf[:, :num_classes]).astype(np.float64)
    fn = conf.sum(axis=1) - tp
    fp = conf[:, :num_classes].sum(axis=0) - tp
    denom = tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, tp / np.maximum(denom, 1), np.nan)


def category_confusion(conf: np.ndarray) -> np.ndarray:
    """Collapse a 19×20 class confusion matrix into a 7×8 category one (last column: no category)."""
    lut = train_id_to_category()[:NUM_CLASSES].astype(np.int64)
    num_cat = len(CATEGORY_NAMES)
    out = np.zeros((num_cat, num_cat + 1), np.int64)
    for gt_class in range(NUM_CLASSES):
        for pred_class in range(NUM_CLASSES + 1):
            pred_cat = lut[pred_class] if pred_class < NUM_CLASSES else num_cat
            out[lut[gt_class], pred_cat] += conf[gt_class, pred_class]
    return out


def metrics_from_confusion(conf: np.ndarray) -> dict:
    """miou, miou_category, pixel_acc and per-class / per-category IoU from a 19×20 confusion matrix."""
    class_iou = iou_from_confusion(conf)
    cat_iou = iou_from_confusion(category_confusion(conf))
    total = conf.sum()
    if total == 0:
        raise ValueError("no ground-truth pixel with a train class was evaluated")
    return {
        "miou": float(np.nanmean(class_iou)),
        "miou_category": float(np.nanmean(cat_iou)),
        "pixel_acc": float(np.trace(conf[:, :NUM_CLASSES]) / total),
        "iou_per_class": {name: (None if np.isnan(v) else float(v)) for name, v in zip(CLASS_NAMES, class_iou)},
        "iou_per_category": {name: (None if np.isnan(v) else float(v)) for name, v in zip(CATEGORY_NAMES, cat_iou)},
        "num_pixels": int(total),
    }


class SemanticEvaluator:
    """Accumulates the confusion matrix over a stream of (prediction, ground truth) trainId maps."""

    def __init__(self):
        self.confusion = np.zeros((NUM_CLASSES, NUM_CLASSES + 1), np.int64)
        self.num_images = 0

    def add(self, pred: np.ndarray, gt: np.ndarray) -> None:
        """H×W trainIds each (255 = none); a prediction of another size is resized (nearest)."""
        pred = as_2d(np.asarray(pred))
        gt = as_2d(np.asarray(gt))
        if pred.ndim != 2 or gt.ndim != 2:
            raise ValueError(f"semantic maps must be H×W trainIds, got prediction {pred.shape} and ground truth {gt.shape}")
        if pred.shape != gt.shape:
            pred = cv2.resize(pred.astype(np.uint8), (gt.shape[1], gt.shape[0]), interpolation=cv2.INTER_NEAREST)
        self.confusion += confusion_matrix(pred, gt)
        self.num_images += 1

    def result(self) -> dict:
        out = metrics_from_confusion(self.confusion)
        out["num_images"] = self.num_images
        return out


def evaluate_semantic(preds, gts) -> dict:
    """Semantic metrics over matched sequences of H×W trainId maps."""
    evaluator = SemanticEvaluator()
    for pred, gt in zip(preds, gts, strict=True):
        evaluator.add(pred, gt)
    return evaluator.result()
