"""Pictures of the outputs: depth, optical flow, semantics and motion as H×W×3 uint8 RGB, and mosaic rows.

Conventions: depth is shown as inverse depth (near = bright) with the magma
colour map, stretched per image between its 2nd and 98th percentiles; flow with the
Middlebury colour wheel (Baker et al. 2011: hue = direction, saturation =
magnitude), normalised per image unless ``max_flow`` is given; semantics in
the Cityscapes palette (255 = black); motion as a red overlay on the input.
"""
from __future__ import annotations

import cv2
import numpy as np

from omeganet_ros.classes import colorize

MOSAIC_PANELS = ("input", "depth", "flow", "semantics", "motion")


def colorize_depth(depth: np.ndarray) -> np.ndarray:
    """H×W depth (any unit; ≤0, NaN, inf = none) → H×W×3 uint8 RGB (magma on inverse depth, none = black)."""
    depth = np.asarray(depth, np.float32)
    if depth.ndim != 2:
        raise ValueError(f"depth must be H×W, got shape {depth.shape}")
    valid = np.isfinite(depth) & (depth > 0)
    inverse = np.zeros_like(depth)
    inverse[valid] = 1.0 / depth[valid]
    low, top = (np.percentile(inverse[valid], [2, 98]) if valid.any() else (0.0, 1.0))
    if top - low < 1e-6 * max(top, 1e-12):  # (nearly) constant depth: no contrast to stretch
        low = 0.0
    scaled = np.clip((inverse - low) / max(top - low, 1e-12), 0.0, 1.0)
    rgb = cv2.applyColorMap((scaled * 255).astype(np.uint8), cv2.COLORMAP_MAGMA)[..., ::-1]
    rgb = np.ascontiguousarray(rgb)
    rgb[~valid] = 0
    return rgb


def _color_wheel() -> np.ndarray:
    """The 55×3 Middlebury flow colour wheel (RY 15, YG 6, GC 4, CB 11, BM 13, MR 6), RGB in [0, 255]."""
    segments = [(15, (255, 0, 0), (255, 255, 0)), (6, (255, 255, 0), (0, 255, 0)), (4, (0, 255, 0), (0, 255, 255)),
                (11, (0, 255, 255), (0, 0, 255)), (13, (0, 0, 255), (255, 0, 255)), (6, (255, 0, 255), (255, 0, 0))]
    rows = []
    for count, start, end in segments:
        t = np.arange(count)[:, None] / count
        rows.append(np.asarray(start) * (1 - t) + np.asarray(end) * t)
    return np.concatenate(rows)


def colorize_flow(flow: np.ndarray, max_flow: float | None = None) -> np.ndarray:
    """H×W×2 flow (pixels; NaN = none) → H×W×3 uint8 RGB on the Middlebury colour wheel (none = black).

    ``max_flow``: magnitude drawn fully saturated (default: the image's largest valid magnitude).
    """
    flow = np.asarray(flow, np.float32)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"flow must be H×W×2, got shape {flow.shape}")
    u, v = flow[..., 0], flow[..., 1]
    valid = np.isfinite(u) & np.isfinite(v)
    u, v = np.where(valid, u, 0.0), np.where(valid, v, 0.0)
    magnitude = np.sqrt(u ** 2 + v ** 2)
    if max_flow is None:
        max_flow = float(magnitude.max()) if valid.any() else 1.0
    radius = magnitude / max(max_flow, 1e-6)
    wheel = _color_wheel()
    count = len(wheel)
    angle = np.arctan2(-v, -u) / np.pi                      # (−1, 1]
    position = (angle + 1.0) / 2.0 * (count - 1)
    k0 = np.floor(position).astype(np.int64) % count
    k1 = (k0 + 1) % count
    frac = (position - np.floor(position))[..., None]
    colour = ((1 - frac) * wheel[k0] + frac * wheel[k1]) / 255.0
    inside = (radius <= 1)[..., None]
    r = np.minimum(radius, 1.0)[..., None]
    colour = np.where(inside, 1 - r * (1 - colour), colour * 0.75)
    rgb = (colour * 255).astype(np.uint8)
    rgb[~valid] = 0
    return rgb


def colorize_semantic(labels: np.ndarray) -> np.ndarray:
    """H×W uint8 trainIds → H×W×3 uint8 RGB (Cityscapes palette; 255 = black)."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"semantic labels must be H×W, got shape {labels.shape}")
    return colorize(labels.astype(np.uint8))


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
