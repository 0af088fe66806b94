"""Optical-flow metrics of the KITTI 2015 benchmark.

* ``epe_noc`` / ``epe_all``: end-point error (pixels) on the pixels valid in
  the non-occluded (noc) and all (occ) ground truth; per-image means averaged
  over images (as RAFT, ΩNet and most papers report it).
* ``fl_all``: percentage of outliers over all valid (occ) pixels of the whole
  dataset, an outlier having EPE > 3 px and EPE > 5 % of the true flow's
  magnitude (KITTI devkit).

A prediction with missing pixels (NaN, or invalid in a KITTI PNG) is filled
as the KITTI devkit does (``interpolateBackground``): along each row, a gap
between two valid pixels takes the smaller of their values (per component),
gaps at the row ends take the nearest valid value, then columns are
extrapolated up and down; ``pred_density`` reports the share of predicted
pixels.

A ground truth with a single validity mask (the synthetic world: NaN where the
flow is undefined, which already excludes occlusions) serves as both: its
``epe_noc`` and ``epe_all`` are then the same figure.
"""
from __future__ import annotations

import cv2
import numpy as np

OUTLIER_PIXELS = 3.0
OUTLIER_RATIO = 0.05


def resize_flow_np(flow: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinearly resize H×W×2 flow to height×width, scaling its values to the new pixels."""
    h, w = flow.shape[:2]
    if (h, w) == (height, width):
        return flow
    out = cv2.resize(flow.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    return out * np.array([width / w, height / h], np.float32)


def flow_valid_mask(flow: np.ndarray) -> np.ndarray:
    """H×W bool: both components finite and not the Middlebury 'unknown' marker (> 1e9)."""
    return np.all(np.isfinite(flow), axis=-1) & np.all(np.abs(np.nan_to_num(flow)) < 1e9, axis=-1)


def interpolate_background(flow: np.ndarray) -> np.ndarray:
    """Fill non-finite pixels of H×W×2 flow as the KITTI devkit's ``interpolateBackground``."""
    flow = np.array(flow, np.float32)
    valid = np.all(np.isfinite(flow), axis=-1)
    height, width = valid.shape
    for v in range(height):
        cols = np.flatnonzero(valid[v])
        if len(cols) == 0:
            continue
        row = flow[v]
        for a, b in zip(cols[:-1], cols[1:]):
            if b - a > 1:
                row[a + 1:b] = np.minimum(row[a], row[b])
        row[:cols[0]] = row[cols[0]]
        row[cols[-1] + 1:] = row[cols[-1]]
        valid[v] = True
    rows = np.flatnonzero(valid[:, 0])
    if len(rows) == 0:
        raise ValueError("predicted flow has no valid pixel")
    flow[:rows[0]] = flow[rows[0]]
    flow[rows[-1] + 1:] = flow[rows[-1]]
    # Rows still empty between filled ones (the devkit leaves them unset) count as zero flow.
    return np.nan_to_num(flow, nan=0.0, posinf=0.0, neginf=0.0)


class FlowEvaluator:
    """Accumulates KITTI flow metrics over a stream of (prediction, ground truth) pairs."""

    def __init__(self):
        self.epe_noc: list[float] = []
        self.epe_all: list[float] = []
        self.outliers = 0
        self.valid_all = 0
        self.predicted = 0
        self.pixels = 0

    def add(self, pred: np.ndarray, gt_all: np.ndarray, valid_all: np.ndarray | None = None,
            gt_noc: np.ndarray | None = None, valid_noc: np.ndarray | None = None) -> dict:
        """Add one H×W×2 prediction (pixels) and its ground truth.

        ``gt_all``/``valid_all``: the occ ground truth and its mask (default:
        where ``gt_all`` is finite); ``gt_noc``/``valid_noc``: the noc ground
        truth (default: the same as occ). A prediction of another size is
        resized with its values scaled. Returns this image's figures.
        """
        gt_all = np.asarray(gt_all, np.float32)
        pred = np.asarray(pred, np.float32)
        if gt_all.ndim != 3 or gt_all.shape[-1] != 2 or pred.ndim != 3 or pred.shape[-1] != 2:
            raise ValueError(f"flow must be H×W×2, got prediction {pred.shape} and ground truth {gt_all.shape}")
        height, width = gt_all.shape[:2]
        pred = resize_flow_np(pred, height, width)
        valid_all = flow_valid_mask(gt_all) if valid_all is None else (np.asarray(valid_all, bool) & flow_valid_mask(gt_all))
        if gt_noc is None:
            gt_noc, valid_noc = gt_all, valid_all
        else:
            gt_noc = np.asarray(gt_noc, np.float32)
            if gt_noc.shape != gt_all.shape:
                raise ValueError(f"noc ground truth {gt_noc.shape} and occ ground truth {gt_all.shape} differ in shape")
            valid_noc = flow_valid_mask(gt_noc) if valid_noc is None else (np.asarray(valid_noc, bool) & flow_valid_mask(gt_noc))
        if not valid_all.any():
            raise ValueError("flow ground truth has no valid pixel")
        predicted = np.all(np.isfinite(pred), axis=-1)
        self.predicted += int(predicted.sum())
        self.pixels += predicted.size
        if not predicted.all():
            pred = interpolate_background(pred)

        epe_all = np.linalg.norm(pred - gt_all, axis=-1)[valid_all]
        magnitude = np.linalg.norm(gt_all, axis=-1)[valid_all]
        outliers = (epe_all > OUTLIER_PIXELS) & (epe_all > OUTLIER_RATIO * magnitude)
        epe_noc = np.linalg.norm(pred - gt_noc, axis=-1)[valid_noc] if valid_noc.any() else np.array([np.nan])
        image = {"epe_noc": float(epe_noc.mean()), "epe_all": float(epe_all.mean()),
                 "fl_all": 100.0 * float(outliers.mean())}
        self.epe_all.append(image["epe_all"])
        if valid_noc.any():
            self.epe_noc.append(image["epe_noc"])
        self.outliers += int(outliers.sum())
        self.valid_all += int(valid_all.sum())
        return image

    def result(self) -> dict:
        if not self.epe_all:
            raise ValueError("no flow was evaluated")
        return {
            "epe_noc": float(np.mean(self.epe_noc)) if self.epe_noc else float("nan"),
            "epe_all": float(np.mean(self.epe_all)),
            "fl_all": 100.0 * self.outliers / self.valid_all,
            "num_images": len(self.epe_all),
            "num_valid_pixels": self.valid_all,
            "pred_density": self.predicted / self.pixels,
        }


def evaluate_flow(preds, gts_all, gts_noc=None) -> dict:
    """Flow metrics over matched sequences of H×W×2 predictions and ground truths (NaN = invalid).

    ``gts_noc`` (optional): the non-occluded ground truths, same order.
    """
    evaluator = FlowEvaluator()
    if gts_noc is None:
        triples = ((pred, gt, None) for pred, gt in zip(preds, gts_all, strict=True))
    else:
        triples = zip(preds, gts_all, gts_noc, strict=True)
    for pred, gt, noc in triples:
        evaluator.add(pred, gt, gt_noc=noc)
    return evaluator.result()
