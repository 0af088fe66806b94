"""Monocular depth metrics on the KITTI Eigen split, as monodepth2 (``evaluate_depth.py``) computes them.

Per image: the prediction is resized to the ground truth (bilinearly, in
inverse depth, as monodepth2 resizes its disparities), pixels are kept where
the ground truth is finite and inside (1e-3, 80) m and inside the crop (Garg
by default), the prediction is multiplied by the median ratio
``median(gt) / median(pred)`` (median scaling, for up-to-scale monocular
predictions; off for metric ones), clamped to [1e-3, 80] m, and the seven
errors are computed. Dataset figures are the mean of the per-image figures.
"""
from __future__ import annotations

import cv2
import numpy as np

MIN_DEPTH = 1e-3
MAX_DEPTH = 80.0
METRIC_NAMES = ("abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3")

# Crops in fractions of the ground-truth height/width: (top, bottom, left, right).
CROPS = {
    "garg": (0.40810811, 0.99189189, 0.03594771, 0.96405229),
    "eigen": (0.3324324, 0.91351351, 0.0359477, 0.96405229),
}


def as_2d(array: np.ndarray) -> np.ndarray:
    """H×W from H×W, 1×H×W or H×W×1 (a single channel); anything else is returned as is."""
    if array.ndim == 3 and array.shape[0] == 1:
        return array[0]
    if array.ndim == 3 and array.shape[-1] == 1:
        return array[..., 0]
    return array


def crop_mask(height: int, width: int, crop: str | None = "garg") -> np.ndarray:
    """H×W bool mask of the evaluation crop (all True when ``crop`` is None)."""
    mask = np.zeros((height, width), bool)
    if crop is None:
        mask[:] = True
        return mask
    if crop not in CROPS:
        raise ValueError(f"unknown crop {crop!r}; expected one of {sorted(CROPS)} or None")
    top, bottom, left, right = CROPS[crop]
    rows = np.array([top * height, bottom * height], dtype=np.float64).astype(np.int32)
    cols = np.array([left * width, right * width], dtype=np.float64).astype(np.int32)
    mask[rows[0]:rows[1], cols[0]:cols[1]] = True
    return mask


def compute_depth_errors(gt: np.ndarray, pred: np.ndarray) -> dict:
    """The seven depth metrics between matched 1-D arrays of positive depths (metres)."""
    thresh = np.maximum(gt / pred, pred / gt)
    return {
        "abs_rel": float(np.mean(np.abs(gt - pred) / gt)),
        "sq_rel": float(np.mean((gt - pred) ** 2 / gt)),
        "rmse": float(np.sqrt(np.mean((gt - pred) ** 2))),
        "rmse_log": float(np.sqrt(np.mean((np.log(gt) - np.log(pred)) ** 2))),
        "a1": float(np.mean(thresh < 1.25)),
        "a2": float(np.mean(thresh < 1.25 ** 2)),
        "a3": float(np.mean(thresh < 1.25 ** 3)),
    }


def resize_depth(pred: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize an H×W depth map to height×width, interpolating inverse depth bilinearly (monodepth2)."""
    if pred.shape == (height, width):
        return pred
    with np.errstate(divide="ignore", invalid="ignore"):
        disp = np.where(np.isfinite(pred) & (pred > 0), 1.0 / pred, 0.0).astype(np.float32)
        disp = cv2.resize(disp, (width, height), interpolation=cv2.INTER_LINEAR)
        return np.where(disp > 0, 1.0 / disp, np.nan).astype(np.float32)


class DepthEvaluator:
    """Accumulates per-image depth metrics over a stream of (prediction, ground truth) pairs.

    ``median_scaling``: per-image median scaling (monocular, up-to-scale
    predictions); ``scale``: a fixed factor applied to predictions first
    (monodepth2's ``pred_depth_scale_factor``, e.g. 5.4 for stereo models);
    ``crop``: "garg", "eigen" or None.
    """

    def __init__(self, median_scaling: bool = True, crop: str | None = "garg",
                 min_depth: float = MIN_DEPTH, max_depth: float = MAX_DEPTH, scale: float = 1.0):
        if crop is not None and crop not in CROPS:
            raise ValueError(f"unknown crop {crop!r}; expected one of {sorted(CROPS)} or None")
        self.median_scaling = median_scaling
        self.crop = crop
        self.min_depth = min_depth
        self.max_depth = max_depth
        self.scale = scale
        self.per_image: list[dict] = []
        self.per_region: dict[str, list[dict]] = {}
        self.ratios: list[float] = []
        self.skipped = 0

    def add(self, pred: np.ndarray, gt: np.ndarray, regions: dict[str, np.ndarray] | None = None) -> dict | None:
        """Add one H×W prediction and its ground truth (metres; non-finite or ≤ 0 = no measurement).

        ``regions``: name → H×W bool mask (at the ground truth's size), each also scored on its own with the
        whole image's median scale (e.g. static and moving pixels); an image counts for a region where the
        region has a valid pixel. Returns the image's metrics, or None when it has no valid pixel (counted in
        ``skipped``).
        """
        pred = as_2d(np.asarray(pred, np.float32))
        gt = as_2d(np.asarray(gt, np.float32))
        if pred.ndim != 2 or gt.ndim != 2:
            raise ValueError(f"depth maps must be H×W, got prediction {pred.shape} and ground truth {gt.shape}")
        height, width = gt.shape
        pred = resize_depth(pred, height, width) * np.float32(self.scale)
        with np.errstate(invalid="ignore"):
            mask = np.isfinite(gt) & (gt > self.min_depth) & (gt < self.max_depth)
            mask &= crop_mask(height, width, self.crop)
            # A prediction without a value (NaN, as REP 118 invalid) cannot be scored: left out.
            mask &= np.isfinite(pred) & (pred > 0)
        if not mask.any():
            self.skipped += 1
            return None
        gt_valid = gt[mask].astype(np.float64)
        pred_valid = pred[mask].astype(np.float64)
        if self.median_scaling:
            ratio = float(np.median(gt_valid) / np.median(pred_valid))
            self.ratios.append(ratio)
            pred_valid *= ratio
        pred_valid = np.clip(pred_valid, self.min_depth, self.max_depth)
        errors = compute_depth_errors(gt_valid, pred_valid)
        self.per_image.append(errors)
        for name, region in (regions or {}).items():
            region = np.asarray(region, bool)
            if region.shape != gt.shape:
                raise ValueError(f"depth region {name!r} is {region.shape}, the ground truth {gt.shape}")
            inside = region[mask]
            self.per_region.setdefault(name, [])
            if inside.any():
                self.per_region[name].append(compute_depth_errors(gt_valid[inside], pred_valid[inside]))
        return errors

    def result(self) -> dict:
        """Mean of the per-image metrics, with ``num_images``, ``num_skipped`` and the median-scaling ratios."""
        if not self.per_image:
            raise ValueError("no image with valid ground-truth depth was evaluated")
        out = {name: float(np.mean([e[name] for e in self.per_image])) for name in METRIC_NAMES}
        out["num_images"] = len(self.per_image)
        out["num_skipped"] = self.skipped
        if self.per_region:
            out["regions"] = {name: {**{metric: float(np.mean([e[metric] for e in errors])) if errors else None
                                        for metric in METRIC_NAMES}, "num_images": len(errors)}
                              for name, errors in self.per_region.items()}
        if self.ratios:
            out["scale_ratio_median"] = float(np.median(self.ratios))
            out["scale_ratio_std"] = float(np.std(self.ratios / np.median(self.ratios)))
        return out


def evaluate_depth(preds, gts, median_scaling: bool = True, crop: str | None = "garg", **kwargs) -> dict:
    """Depth metrics over matched sequences of H×W predicted and ground-truth depth maps (metres)."""
    evaluator = DepthEvaluator(median_scaling=median_scaling, crop=crop, **kwargs)
    count = 0
    for pred, gt in zip(preds, gts, strict=True):
        evaluator.add(pred, gt)
        count += 1
    if count == 0:
        raise ValueError("no depth maps to evaluate")
    return evaluator.result()
