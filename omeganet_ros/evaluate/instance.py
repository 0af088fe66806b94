"""Instance segmentation quality: class-agnostic panoptic quality on thing instances.

Protocol (Kirillov et al., "Panoptic Segmentation", CVPR 2019, restricted to things and without classes):
per image, a predicted segment and a true instance match when their IoU is above 0.5 (such a match is
unique by construction). Over all images:

* ``sq`` — segmentation quality = the mean IoU of the matched pairs (the "matched-instance IoU");
* ``rq`` — recognition quality = TP / (TP + ½ FP + ½ FN), the F1 of instance detection at IoU 0.5;
* ``pq`` = SQ · RQ; also ``precision`` and ``recall`` at IoU 0.5.

True instances smaller than ``min_area`` pixels are void (not counted as misses), and a predicted segment
that lies more than half on void pixels is not counted as a false positive. Ground truth: H×W ids of thing
instances, 0 = none (``instances.thing_instances``); predictions: H×W ids, 0 = none, resized to the
ground truth's size with nearest neighbour.
"""
from __future__ import annotations

import cv2
import numpy as np

MATCH_IOU = 0.5


class InstanceEvaluator:
    """Accumulates matches over (prediction, ground truth) pairs of instance-id maps; see the module docstring."""

    def __init__(self, min_area: int = 20):
        self.min_area = int(min_area)
        self.tp = self.fp = self.fn = 0
        self.iou_sum = 0.0
        self.num_images = 0

    def add(self, pred: np.ndarray, gt: np.ndarray) -> dict:
        """Add one H×W prediction and its ground truth; returns this image's counts."""
        gt = np.asarray(gt).astype(np.int64)
        pred = np.asarray(pred)
        if pred.ndim != 2 or gt.ndim != 2:
            raise ValueError(f"instance maps must be H×W, got prediction {pred.shape} and ground truth {gt.shape}")
        if pred.shape != gt.shape:
            pred = cv2.resize(pred.astype(np.uint16), (gt.shape[1], gt.shape[0]), interpolation=cv2.INTER_NEAREST)
        pred = pred.astype(np.int64)
        gt_ids, gt_areas = np.unique(gt[gt > 0], return_counts=True)
        void = np.isin(gt, gt_ids[gt_areas < self.min_area])
        kept_gt = gt_ids[gt_areas >= self.min_area]
        pred_ids, pred_areas = np.unique(pred[pred > 0], return_counts=True)
        # Intersections of every (pred, gt) pair from one joint histogram.
        both = (pred > 0) & (gt > 0)
        pairs, inter = np.unique(np.stack([pred[both], gt[both]]), axis=1, return_counts=True)
        gt_area = dict(zip(gt_ids.tolist(), gt_areas.tolist()))
        pred_area = dict(zip(pred_ids.tolist(), pred_areas.tolist()))
        matched_pred, matched_gt, ious = set(), set(), []
        for (p, g), n in zip(pairs.T.tolist(), inter.tolist()):
            if g not in gt_area or gt_area[g] < self.min_area:
                continue
            iou = n / (pred_area[p] + gt_area[g] - n)
            if iou > MATCH_IOU:
                matched_pred.add(p)
                matched_gt.add(g)
                ious.append(iou)
        void_per_pred = dict(zip(*np.unique(pred[void & (pred > 0)], return_counts=True))) if void.any() else {}
        fp = sum(1 for p in pred_ids.tolist() if p not in matched_pred and void_per_pred.get(p, 0) <= pred_area[p] / 2)
        fn = sum(1 for g in kept_gt.tolist() if g not in matched_gt)
        self.tp += len(ious)
        self.fp += fp
        self.fn += fn
        self.iou_sum += float(sum(ious))
        self.num_images += 1
        return {"tp": len(ious), "fp": fp, "fn": fn}

    def result(self) -> dict:
        tp, fp, fn = self.tp, self.fp, self.fn
        sq = self.iou_sum / tp if tp else 0.0
        rq = tp / (tp + 0.5 * fp + 0.5 * fn) if (tp + fp + fn) else 0.0
        return {"protocol": "class-agnostic PQ on thing instances, match IoU > 0.5",
                "pq": sq * rq, "sq": sq, "rq": rq, "matched_instance_iou": sq,
                "precision": tp / (tp + fp) if tp + fp else 0.0, "recall": tp / (tp + fn) if tp + fn else 0.0,
                "tp": tp, "fp": fp, "fn": fn, "num_images": self.num_images, "min_area": self.min_area}
