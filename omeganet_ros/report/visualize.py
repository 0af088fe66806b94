"""Mosaic rows and motion overlays for the replay report.

Depth, flow and semantics are coloured by :mod:`omeganet_ros.visualize` (the same
pictures as the node's ``*/colored`` topics); motion is a red overlay on the input.
"""
from __future__ import annotations

import cv2
import numpy as np

from omeganet_ros.visualize import colorize_depth, colorize_flow, colorize_semantic

MOSAIC_PANELS = ("input", "depth", "flow", "semantics", "motion")


def overlay_motion(image: np.ndarray, mask: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """H×W×3 uint8 RGB image with moving pixels (mask ≠ 0) tinted red; the rest darkened."""
    image = np.asarray(image, np.uint8)
    mask = np.asarray(mask) != 0
    if mask.shape != image.shape[:2]:
        mask = cv2.resize(mask.astype(np.uint8), (image.shape[1], image.shape[0]), interpolation=cv2.INTER_NEAREST) != 0
    out = (image.astype(np.float32) * 0.5)
    red = np.array([255.0, 0.0, 0.0])
    out[mask] = image[mask].astype(np.float32) * (1 - alpha) + red * alpha
    return out.astype(np.uint8)


def _fit(panel: np.ndarray, width: int, height: int) -> np.ndarray:
    if panel.shape[:2] != (height, width):
        panel = cv2.resize(panel, (width, height), interpolation=cv2.INTER_NEAREST)
    return panel


def _label(panel: np.ndarray, text: str) -> np.ndarray:
    panel = np.ascontiguousarray(panel.copy())
    scale = max(0.35, panel.shape[0] / 400.0)
    thickness = 1 if scale < 0.6 else 2
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    cv2.rectangle(panel, (0, 0), (tw + 6, th + 8), (0, 0, 0), -1)
    cv2.putText(panel, text, (3, th + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness, cv2.LINE_AA)
    return panel


def mosaic_row(image: np.ndarray, depth: np.ndarray | None = None, flow: np.ndarray | None = None,
               semantic: np.ndarray | None = None, motion_mask: np.ndarray | None = None,
               labels: bool = True, caption: str | None = None) -> np.ndarray:
    """One frame as five panels side by side: input | depth | flow | semantics | motion.

    ``image``: H×W×3 uint8 RGB. Outputs may have another size (they are
    resized to the image); a missing output is drawn grey. Returns H×5W×3 uint8.
    """
    image = np.asarray(image, np.uint8)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"input image must be H×W×3 uint8, got shape {image.shape}")
    height, width = image.shape[:2]
    missing = np.full((height, width, 3), 64, np.uint8)
    panels = [
        image,
        colorize_depth(depth) if depth is not None else missing,
        colorize_flow(flow) if flow is not None else missing,
        colorize_semantic(semantic) if semantic is not None else missing,
        overlay_motion(image, motion_mask) if motion_mask is not None else missing,
    ]
    panels = [_fit(p, width, height) for p in panels]
    if labels:
        names = list(MOSAIC_PANELS)
        if caption:
            names[0] = f"input {caption}"
        panels = [_label(p, n) for p, n in zip(panels, names)]
    return np.concatenate(panels, axis=1)


def mosaic(rows: list[np.ndarray], gap: int = 4) -> np.ndarray:
    """Stack mosaic rows (equal widths) vertically with a white gap between them."""
    if not rows:
        raise ValueError("a mosaic needs at least one row")
    width = rows[0].shape[1]
    out = []
    for i, row in enumerate(rows):
        if row.shape[1] != width:
            raise ValueError(f"mosaic row {i} is {row.shape[1]} px wide, row 0 is {width}")
        if i:
            out.append(np.full((gap, width, 3), 255, np.uint8))
        out.append(row)
    return np.concatenate(out, axis=0)
