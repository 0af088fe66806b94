"""Mosaic rows and motion overlays for the replay report.

Depth, flow and semantics are coloured by :mod:`omeganet_ros.visualize`, instances by
:func:`omeganet_ros.instances.colorize_instances` (the same pictures as the node's ``*/colored`` topics);
motion is a red overlay on the input.
"""
from __future__ import annotations

import cv2
import numpy as np

from omeganet_ros.instances import colorize_instances
from omeganet_ros.visualize import colorize_depth, colorize_flow, colorize_semantic

MOSAIC_PANELS = ("input", "depth", "flow", "semantics", "motion")  # ΩNet's outputs, the default row
ALL_PANELS = MOSAIC_PANELS + ("instances",)
# The node output each panel shows (the names of moreau_engine.absent_outputs; None: the input image).
PANEL_OUTPUT = {"input": None, "depth": "depth", "flow": "flow", "semantics": "semantic", "motion": "motion",
                "instances": "instance"}


def panels_for(outputs_absent, has_instances: bool) -> tuple[str, ...]:
    """The panels of a run's mosaic rows: every panel but those of the outputs its model does not estimate
    (``outputs_absent``, None: unknown); the instance panel only for a model that has instances (known, or
    ``has_instances``: some frame carries them)."""
    if outputs_absent is None:
        return MOSAIC_PANELS + (("instances",) if has_instances else ())
    return tuple(p for p in ALL_PANELS if PANEL_OUTPUT[p] not in outputs_absent)


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
               labels: bool = True, caption: str | None = None, instance: np.ndarray | None = None,
               panels: tuple[str, ...] = MOSAIC_PANELS) -> np.ndarray:
    """One frame as panels side by side, by default the five input | depth | flow | semantics | motion
    (``panels``: any of :data:`ALL_PANELS`, e.g. input | depth | instances for the Moreau et al. model).

    ``image``: H×W×3 uint8 RGB. Outputs may have another size (they are
    resized to the image); a missing output is drawn grey. Returns H×(n·W)×3 uint8 for n panels.
    """
    unknown = [p for p in panels if p not in ALL_PANELS]
    if unknown:
        raise ValueError(f"unknown mosaic panels {unknown}; expected some of {ALL_PANELS}")
    image = np.asarray(image, np.uint8)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"input image must be H×W×3 uint8, got shape {image.shape}")
    height, width = image.shape[:2]
    missing = np.full((height, width, 3), 64, np.uint8)
    draw = {
        "input": lambda: image,
        "depth": lambda: colorize_depth(depth) if depth is not None else missing,
        "flow": lambda: colorize_flow(flow) if flow is not None else missing,
        "semantics": lambda: colorize_semantic(semantic) if semantic is not None else missing,
        "motion": lambda: overlay_motion(image, motion_mask) if motion_mask is not None else missing,
        "instances": lambda: colorize_instances(instance) if instance is not None else missing,
    }
    pictures = [_fit(draw[name](), width, height) for name in panels]
    if labels:
        names = [f"input {caption}" if name == "input" and caption else name for name in panels]
        pictures = [_label(p, n) for p, n in zip(pictures, names)]
    return np.concatenate(pictures, axis=1)


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
