"""Pictures of the outputs as H×W×3 uint8 RGB, shared by the ROS node (``*/colored`` topics) and the replay report.

Conventions: depth as inverse depth in the magma colour map, normalised by its
95th percentile (monodepth2's visualisations: near is bright, far is dark,
whatever the scale); flow in the Middlebury colour coding (Baker et al.: hue =
direction, saturation = magnitude); semantics in the Cityscapes palette. Invalid
values (NaN, inf, depth ≤ 0, trainId 255) are black.
"""
from __future__ import annotations

import cv2
import numpy as np

from omeganet_ros.classes import colorize


def colorize_depth(depth: np.ndarray) -> np.ndarray:
    """H×W depth (any unit; ≤0, NaN, inf = none) → H×W×3 uint8 RGB (magma on inverse depth, none = black)."""
    depth = np.asarray(depth, dtype=np.float32)
    if depth.ndim != 2:
        raise ValueError(f"depth must be H×W, got shape {depth.shape}")
    valid = np.isfinite(depth)
    valid &= depth > 0
    inverse = np.divide(np.float32(1.0), depth, out=np.zeros_like(depth), where=valid)  # float32, in place below
    # Scaled to the nearest pixel, not a percentile: a depth clamped at the network's minimum must show as a
    # saturated patch, not vanish among merely near pixels.
    top = float(inverse.max()) if valid.any() else 1.0
    inverse *= np.float32(255.0 / max(top, 1e-12))
    np.minimum(inverse, np.float32(255.0), out=inverse)
    rgb = cv2.cvtColor(cv2.applyColorMap(inverse.astype(np.uint8), cv2.COLORMAP_MAGMA), cv2.COLOR_BGR2RGB)
    if not valid.all():
        rgb[~valid] = 0
    return rgb


def _middlebury_color_wheel() -> np.ndarray:
    """The 55 RGB colours of the Middlebury flow colour wheel (Baker et al., ICCV 2007), 55×3 float in [0, 255]."""
    segments = (("RY", 15), ("YG", 6), ("GC", 4), ("CB", 11), ("BM", 13), ("MR", 6))
    wheel = []
    for name, count in segments:
        for value in np.floor(255 * np.arange(count) / count):
            up, down = value, 255 - value
            wheel.append({"RY": (255, up, 0), "YG": (down, 255, 0), "GC": (0, 255, up),
                          "CB": (0, down, 255), "BM": (up, 0, 255), "MR": (255, 0, down)}[name])
    return np.array(wheel, dtype=np.float64)


FLOW_COLOR_WHEEL = _middlebury_color_wheel()

# Flow colour lookup table, indexed by (direction bin, saturation bin): the wheel sampled at 1/32 of a colour
# step (a bin lands on every wheel colour exactly) × the magnitude in 1/256 of the maximum, plus a last column
# for "beyond the maximum" (dimmed). Nearest bins: within 1 grey level of the exact float64 formula.
_HUE_STEPS = 32
_HUE_BINS = (len(FLOW_COLOR_WHEEL) - 1) * _HUE_STEPS + 1
_RADIUS_BINS = 256


def _flow_color_lut() -> np.ndarray:
    """(``_HUE_BINS`` · (``_RADIUS_BINS`` + 2))×3 uint8: row hue·(R + 2) + r is hue bin ``hue`` at radius r/R
    (r ≤ R) or dimmed (r = R + 1)."""
    position = np.arange(_HUE_BINS) / _HUE_STEPS
    k0 = np.floor(position).astype(int)
    k1 = (k0 + 1) % len(FLOW_COLOR_WHEEL)
    f = (position - k0)[:, None]
    hue = ((1 - f) * FLOW_COLOR_WHEEL[k0] + f * FLOW_COLOR_WHEEL[k1]) / 255.0  # bins×3
    radius = (np.arange(_RADIUS_BINS + 1) / _RADIUS_BINS)[None, :, None]
    saturated = 1 - radius * (1 - hue[:, None, :])                              # bins×(R+1)×3
    colour = np.concatenate([saturated, hue[:, None, :] * 0.75], axis=1)        # bins×(R+2)×3
    return np.floor(255 * colour).astype(np.uint8).reshape(-1, 3)


FLOW_COLOR_LUT = _flow_color_lut()


def colorize_flow(flow: np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
    """Flow H×W×2 (pixels; NaN = none) → H×W×3 uint8 RGB in the Middlebury colour coding.

    Hue gives the direction (right = red, down = yellow… as in the Middlebury
    and KITTI tools), saturation the magnitude relative to ``max_magnitude``
    (default: the largest finite magnitude in the image); beyond it colours
    are dimmed; non-finite flow is black. float32 throughout, colours from
    :data:`FLOW_COLOR_LUT` (one gather per pixel).
    """
    flow = np.asarray(flow, dtype=np.float32)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"flow must be H×W×2, got shape {flow.shape}")
    u, v = cv2.split(flow)
    # Middlebury's direction is arctan2(−v, −u) / π ∈ [−1, 1], mapped linearly onto the wheel; that position
    # is OpenCV's [0, 2π) angle θ of (u, v) itself, as θ / 2π (exactly rightwards, θ = 0, is the first colour).
    magnitude, angle = cv2.cartToPolar(u, v)
    valid = np.isfinite(magnitude)  # NaN or ±inf in either component
    if not valid.all():
        magnitude[~valid] = 0.0
        angle[~valid] = 0.0
    if max_magnitude is None:
        max_magnitude = float(magnitude.max()) if magnitude.size else 0.0
    angle *= np.float32((_HUE_BINS - 1) / (2 * np.pi))
    angle += np.float32(0.5)
    index = np.minimum(angle, np.float32(_HUE_BINS - 1)).astype(np.int32)
    index *= _RADIUS_BINS + 2
    # Nearest radius bin; beyond the maximum (by more than half a bin) the dimmed column R + 1.
    magnitude *= np.float32(_RADIUS_BINS / max(max_magnitude, 1e-9))
    magnitude += np.float32(0.5)
    index += np.minimum(magnitude, np.float32(_RADIUS_BINS + 1)).astype(np.int32)
    rgb = np.take(FLOW_COLOR_LUT, index, axis=0)
    if not valid.all():
        rgb[~valid] = 0
    return rgb


def colorize_semantic(labels: np.ndarray) -> np.ndarray:
    """H×W uint8 trainIds → H×W×3 uint8 RGB (Cityscapes palette; 255 = black)."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"semantic labels must be H×W, got shape {labels.shape}")
    return colorize(labels.astype(np.uint8))
